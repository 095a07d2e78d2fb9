"""Native unit tests of tessera_sdk (CPython, no WebAssembly). The export glue
tests need the stub bindings componentize-py generates (``componentize-py
bindings``); guest-sdk/python/test makes them and sets
``TESSERA_PY_BINDINGS``; without it those tests are skipped."""

from __future__ import annotations

import os
import sys
import unittest
from typing import Any, Dict, List

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import tessera_sdk  # noqa: E402
from tessera_sdk import (  # noqa: E402
    CompositionRequest,
    Context,
    Error,
    Expansion,
    Fields,
    Finding,
    Metadata,
    Object,
    Operation,
    Review,
    Severity,
    UserInfo,
    Verdict,
    crash_report,
    is_dns1035_label,
    is_quantity,
    rust_debug,
)
from tessera_sdk.object import base64_decode, base64_encode  # noqa: E402


class FieldsTest(unittest.TestCase):
    def test_errors_name_the_field_and_value(self) -> None:
        spec = {"replicas": "three", "engine": "oracle", "storage": "lots"}
        f = Fields("spec", spec)
        with self.assertRaises(Error) as e:
            f.integer("replicas")
        self.assertEqual(e.exception.message, 'spec.replicas must be an integer, got "three"')
        self.assertEqual(e.exception.field, "spec.replicas")
        with self.assertRaises(Error) as e:
            f.one_of("engine", ["postgres", "mysql"])
        self.assertEqual(e.exception.message, 'spec.engine must be one of postgres, mysql, got "oracle"')
        with self.assertRaises(Error) as e:
            f.string("version")
        self.assertEqual(e.exception.message, "spec.version is required")
        with self.assertRaises(Error) as e:
            f.quantity("storage")
        self.assertEqual(e.exception.message, 'spec.storage must be a quantity such as 20Gi, got "lots"')

    def test_nested_objects_keep_their_path(self) -> None:
        f = Fields("spec", {"autoscaling": {"minReplicas": "x"}})
        auto = f.opt_object("autoscaling")
        assert auto is not None
        with self.assertRaises(Error) as e:
            auto.opt_integer("minReplicas")
        self.assertEqual(e.exception.message, 'spec.autoscaling.minReplicas must be an integer, got "x"')

    def test_integers_are_serde_integers(self) -> None:
        f = Fields("spec", {"a": 3.0, "b": True, "c": 2**63, "d": 7, "e": None})
        for key, shown in [("a", "3.0"), ("b", "true"), ("c", str(2**63))]:
            with self.assertRaises(Error) as e:
                f.integer(key)
            self.assertEqual(e.exception.message, f"spec.{key} must be an integer, got {shown}")
        self.assertEqual(f.integer("d"), 7)
        self.assertIsNone(f.opt_integer("e"))  # null reads as absent
        with self.assertRaises(Error) as e:
            f.integer_in("d", 1, 5)
        self.assertEqual(e.exception.message, "spec.d must be between 1 and 5, got 7")

    def test_lists_bools_and_long_values(self) -> None:
        f = Fields("settings", {"l": ["a", 2], "b": "yes", "long": "x" * 100})
        with self.assertRaises(Error) as e:
            f.opt_str_list("l")
        self.assertEqual(e.exception.message, "settings.l[1] must be a string, got 2")
        self.assertEqual(e.exception.field, "settings.l[1]")
        with self.assertRaises(Error) as e:
            f.opt_bool("b")
        self.assertEqual(e.exception.message, 'settings.b must be true or false, got "yes"')
        with self.assertRaises(Error) as e:
            f.integer("long")
        self.assertEqual(e.exception.message, 'settings.long must be an integer, got "' + "x" * 56 + "...")

    def test_non_object_views_read_as_empty(self) -> None:
        self.assertIsNone(Fields("spec", "text").get("a"))
        self.assertIsNone(Fields("spec", None).opt_string("a"))

    def test_dns_labels(self) -> None:
        self.assertTrue(is_dns1035_label("orders-2", 63))
        for bad in ["", "2x", "Orders", "a-", "a_b", "a" * 64, "é"]:
            self.assertFalse(is_dns1035_label(bad, 63), bad)
        self.assertFalse(is_dns1035_label("abcdef", 5))

    def test_quantities(self) -> None:
        for ok in ["20Gi", "1", "1.5", "500m", "1e3", "+2Ki", ".5"]:
            self.assertTrue(is_quantity(ok), ok)
        for bad in ["", "Gi", "20GB", "lots", "1e", "1.2.3", "２"]:
            self.assertFalse(is_quantity(bad), bad)


class ObjectTest(unittest.TestCase):
    def test_base64_round_trips(self) -> None:
        for text in ["", "f", "fo", "foo", "foob", "fooba", "foobar", "p@ss/w+rd"]:
            self.assertEqual(base64_decode(base64_encode(text.encode())), text.encode())
        self.assertEqual(base64_encode(b"foobar"), "Zm9vYmFy")
        self.assertEqual(base64_encode(b"fo"), "Zm8=")
        self.assertIsNone(base64_decode("!!"))

    def test_base64_decoding_takes_any_padding_and_loose_last_bits(self) -> None:
        for text in ["Zm8", "Zm8=", "Zm8==", "Zm8===", "Zm9="]:
            self.assertEqual(base64_decode(text), b"fo", text)
        for text in ["Zm8=Zm8=", "Zm 8=", "Zm8-", "Z"]:
            self.assertIsNone(base64_decode(text), text)

    def test_builder_keeps_field_order(self) -> None:
        o = Object("v1", "ConfigMap", "x").with_namespace("ns").with_label("a", "1").with_field("data", {"k": "v"})
        self.assertEqual(
            o.to_json(),
            '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"ns","labels":{"a":"1"}},"data":{"k":"v"}}',
        )
        self.assertEqual(o.namespace, "ns")
        self.assertEqual(o.labels(), [("a", "1")])

    def test_non_ascii_is_kept(self) -> None:
        self.assertEqual(Object("v1", "ConfigMap", "é").to_json(), '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"é"}}')


def _request(composite: Dict[str, Any], observed: List[Dict[str, Any]]) -> CompositionRequest:
    return CompositionRequest(
        Object.from_value("composite", composite),
        [Object.from_value("observed", o) for o in observed],
        {},
        Context("cli", False),
    )


class RequestTest(unittest.TestCase):
    def test_child_carries_namespace_and_labels(self) -> None:
        r = _request({"metadata": {"name": "db", "namespace": "team", "labels": {"team": "a", "n": 1}}}, [])
        self.assertEqual(
            r.child("v1", "Service", "db").to_json(),
            '{"apiVersion":"v1","kind":"Service","metadata":{"name":"db","namespace":"team","labels":{"team":"a"}}}',
        )

    def test_credential_prefers_the_observed_secret(self) -> None:
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-cred"}, "data": {"password": "aHVudGVyMg=="}}
        calls: List[Any] = []
        original = tessera_sdk.host.derive_secret
        tessera_sdk.host.derive_secret = lambda purpose, length: calls.append((purpose, length)) or "D" * length  # type: ignore[assignment]
        try:
            self.assertEqual(_request({"metadata": {"name": "db"}}, [secret]).credential("db-cred", "password", 8), "hunter2")
            empty = dict(secret, data={"password": ""})
            self.assertEqual(_request({"metadata": {"name": "db"}}, [empty]).credential("db-cred", "password", 8), "D" * 8)
            self.assertEqual(calls, [("db-cred/password", 8)])
        finally:
            tessera_sdk.host.derive_secret = original  # type: ignore[assignment]

    def test_verdicts(self) -> None:
        self.assertTrue(Verdict.from_findings([Finding.warning("w")]).allowed)
        self.assertFalse(Verdict.from_findings([Finding.error("e").at("spec")]).allowed)

    def test_rust_debug(self) -> None:
        self.assertEqual(rust_debug('a"b\\c\td\né\x01'), '"a\\"b\\\\c\\td\\né\\u{1}"')


class CrashReportTest(unittest.TestCase):
    def test_report_is_bounded_and_names_the_exception(self) -> None:
        def deep(n: int) -> None:
            if n == 0:
                raise ValueError("v" * 10_000)
            deep(n - 1)

        try:
            deep(50)
        except ValueError as e:
            report = crash_report(e, "expand")
        self.assertTrue(report.startswith("tessera_sdk: expand raised ValueError: vvv"))
        self.assertIn("outer frames left out", report)
        self.assertLessEqual(len(report.encode()), tessera_sdk._export.CRASH_REPORT_BYTES)


@unittest.skipUnless(os.environ.get("TESSERA_PY_BINDINGS"), "needs the stub bindings (run guest-sdk/python/test)")
class ExportGlueTest(unittest.TestCase):
    """The decorators' WitWorld classes against componentize-py's generated
    (stub) types: the same conversions the component runs."""

    @classmethod
    def setUpClass(cls) -> None:
        sys.path.insert(0, os.path.join(os.environ["TESSERA_PY_BINDINGS"], "policy"))

    def test_policy_answers_and_refusals(self) -> None:
        from componentize_py_types import Err
        from wit_world.imports import policy_types as p
        from wit_world.imports import types as t

        module = type(sys)("plugin_under_test")
        sys.modules["plugin_under_test"] = module

        def validate(review: Review) -> Verdict:
            review.settings().integer("max")
            assert review.object is not None
            return Verdict.from_findings([Finding.error(f"{review.object.name} {review.operation.value}").at("metadata.name")])

        validate.__module__ = "plugin_under_test"
        tessera_sdk.policy(Metadata("p", "1.0.0").handles("v1", "ConfigMap").settings_schema({"type": "object"}))(validate)
        world = module.WitWorld()
        meta = world.metadata()
        self.assertEqual(meta, t.PluginMetadata("p", "1.0.0", "", [t.KindRef("v1", "ConfigMap")], '{"type":"object"}'))
        review = p.Review(p.Operation.UPDATE, '{"metadata":{"name":"x"}}', None, p.UserInfo("u", "1", []), '{"max":2}')
        self.assertEqual(
            world.validate(review),
            p.Verdict(False, [t.Finding(t.Severity.ERROR, "x update", "metadata.name")]),
        )
        review.settings = '{"max":"two"}'
        with self.assertRaises(Err) as e:
            world.validate(review)
        self.assertEqual(e.exception.value, t.PluginError('settings.max must be an integer, got "two"', "settings.max"))
        review.object = "[1]"
        review.settings = '{"max":2}'
        with self.assertRaises(Err) as e:
            world.validate(review)
        self.assertEqual(e.exception.value, t.PluginError("object must be a JSON object", None))


if __name__ == "__main__":
    unittest.main()
