"""What a plugin is asked and what it answers (mirrors the request and answer
types of guest-sdk/src/types.rs)."""

from __future__ import annotations

from typing import Any, List, Optional

from . import host
from ._json import JsonValue, dump, parse
from ._types import Condition, Context, Error, Finding, Operation, Severity, UserInfo
from .fields import Fields
from .object import Object, base64_decode


def _parse_json(what: str, text: str) -> JsonValue:
    try:
        return parse(text)
    except ValueError as e:
        raise Error(f"{what} is not valid JSON: {e}") from None


class CompositionRequest:
    """What ``expand`` is asked to do."""

    def __init__(self, composite: Object, observed: List[Object], settings: JsonValue, context: Context) -> None:
        #: The composite.
        self.composite: Object = composite
        #: The children the composite already owns, as observed.
        self.observed_children: List[Object] = observed
        #: The binding's settings (an object; empty when none were given).
        self.settings_value: JsonValue = settings
        #: Facts about the evaluation.
        self.context: Context = context

    def spec(self) -> Fields:
        """Reads fields of the composite's ``spec`` with error messages that
        name the field. A missing ``spec`` reads as empty."""
        return Fields("spec", self.composite.value.get("spec"))

    def settings(self) -> Fields:
        """Reads fields of the settings."""
        return Fields("settings", self.settings_value)

    def observed(self, api_version: str, kind: str, name: str) -> Optional[Object]:
        """The observed child with this apiVersion, kind and name, if any."""
        for o in self.observed_children:
            if o.api_version == api_version and o.kind == kind and o.name == name:
                return o
        return None

    def observed_secret_value(self, name: str, key: str) -> Optional[str]:
        """The decoded value of ``data[key]`` in the observed Secret ``name``,
        if there is one. Use it to keep a generated credential stable."""
        secret = self.observed("v1", "Secret", name)
        if secret is None:
            return None
        data = secret.value.get("data")
        if not isinstance(data, dict):
            return None
        encoded = data.get(key)
        if not isinstance(encoded, str):
            return None
        raw = base64_decode(encoded)
        if raw is None:
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return None

    def credential(self, secret_name: str, key: str, length: int) -> str:
        """A credential: the observed Secret's value when there is one (and it
        is not empty), otherwise a value derived by the host from its secret
        key, this composite's identity and ``secret_name/key`` (see
        :func:`tessera_sdk.host.derive_secret`)."""
        value = self.observed_secret_value(secret_name, key)
        if value:
            return value
        return host.derive_secret(f"{secret_name}/{key}", length)

    def child(self, api_version: str, kind: str, name: str) -> Object:
        """A new child object with ``metadata.name``, the composite's namespace
        (if any) and the composite's labels."""
        child = Object(api_version, kind, name)
        namespace = self.composite.namespace
        if namespace is not None:
            child.with_namespace(namespace)
        for key, value in self.composite.labels():
            child.with_label(key, value)
        return child

    @classmethod
    def _from_wit(cls, request: Any) -> "CompositionRequest":
        return cls(
            composite=Object.parse("composite", request.composite),
            observed=[Object.parse(f"observed[{i}]", o) for i, o in enumerate(request.observed)],
            settings=_parse_json("settings", request.settings),
            context=Context(caller=request.context.caller, dry_run=request.context.dry_run),
        )


class Expansion:
    """What ``expand`` answers. The builder methods change it and return it."""

    def __init__(self) -> None:
        """An empty expansion, not ready."""
        self.children: List[Object] = []
        self.status_patch: Optional[JsonValue] = None
        self.conditions: List[Condition] = []
        self.findings: List[Finding] = []
        self.is_ready: bool = False

    def child(self, child: Object) -> "Expansion":
        """Adds a child."""
        self.children.append(child)
        return self

    def status(self, status: JsonValue) -> "Expansion":
        """Sets the JSON object merged into the composite's ``status``."""
        self.status_patch = status
        return self

    def condition(self, condition: Condition) -> "Expansion":
        """Adds a condition for the composite."""
        self.conditions.append(condition)
        return self

    def finding(self, finding: Finding) -> "Expansion":
        """Adds a finding."""
        self.findings.append(finding)
        return self

    def ready(self, ready: bool) -> "Expansion":
        """Says whether the composite is ready."""
        self.is_ready = ready
        return self

    def _into_wit(self) -> Any:
        from wit_world.imports import composition_types as c
        from wit_world.imports import types as t

        return c.Expansion(
            children=[o.to_json() for o in self.children],
            status=None if self.status_patch is None else dump(self.status_patch),
            conditions=[
                t.Condition(
                    type=x.type,
                    status=t.ConditionStatus[x.status.name],
                    reason=x.reason,
                    message=x.message,
                )
                for x in self.conditions
            ],
            findings=[_finding_into_wit(f) for f in self.findings],
            ready=self.is_ready,
        )


def _finding_into_wit(finding: Finding) -> Any:
    from wit_world.imports import types as t

    return t.Finding(severity=t.Severity[finding.severity.name], message=finding.message, field=finding.field)


class Review:
    """What ``validate`` is asked to judge."""

    def __init__(
        self,
        operation: Operation,
        object: Optional[Object],
        old_object: Optional[Object],
        user_info: UserInfo,
        settings: JsonValue,
    ) -> None:
        #: The operation.
        self.operation: Operation = operation
        #: The object after the operation (none on delete).
        self.object: Optional[Object] = object
        #: The object before the operation (update and delete).
        self.old_object: Optional[Object] = old_object
        #: Who asked.
        self.user_info: UserInfo = user_info
        #: The binding's settings (an object; empty when none were given).
        self.settings_value: JsonValue = settings

    def subject(self) -> Optional[Object]:
        """The object the operation is about: the new object, or the old one
        on delete."""
        return self.object if self.object is not None else self.old_object

    def settings(self) -> Fields:
        """Reads fields of the settings."""
        return Fields("settings", self.settings_value)

    @classmethod
    def _from_wit(cls, review: Any) -> "Review":
        return cls(
            operation=Operation[review.operation.name],
            object=None if review.object is None else Object.parse("object", review.object),
            old_object=None if review.old_object is None else Object.parse("oldObject", review.old_object),
            user_info=UserInfo(
                username=review.user_info.username,
                uid=review.user_info.uid,
                groups=list(review.user_info.groups),
            ),
            settings=_parse_json("settings", review.settings),
        )


class Verdict:
    """A policy's answer."""

    def __init__(self, allowed: bool, findings: Optional[List[Finding]] = None) -> None:
        #: Whether the operation is allowed.
        self.allowed: bool = allowed
        #: Why, in detail.
        self.findings: List[Finding] = list(findings or [])

    @classmethod
    def allow(cls) -> "Verdict":
        """Allowed, with no findings."""
        return cls(True, [])

    @classmethod
    def from_findings(cls, findings: List[Finding]) -> "Verdict":
        """Denied when any finding is an error, allowed otherwise."""
        return cls(not any(f.severity is Severity.ERROR for f in findings), findings)

    def __repr__(self) -> str:
        return f"Verdict(allowed={self.allowed!r}, findings={self.findings!r})"

    def _into_wit(self) -> Any:
        from wit_world.imports import policy_types as p

        return p.Verdict(allowed=self.allowed, findings=[_finding_into_wit(f) for f in self.findings])
