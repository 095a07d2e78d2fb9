// The `database` composition plugin, in JavaScript: a port of
// plugins/database/src/lib.rs on the JS SDK (guest-sdk/js).
//
// A `Database` (`platform.tessera.dev/v1alpha1`) becomes:
// - Secret `<name>-credentials` (username, password, database);
// - ConfigMap `<name>-config` (engine configuration);
// - Service `<name>` (the endpoint);
// - StatefulSet `<name>` with a volume claim template for the data;
// - PodDisruptionBudget `<name>`, only when `replicas > 1`.
//
// The status patch carries the endpoint. A bad spec is refused with an error
// that names the field. The children are byte for byte the Rust plugin's
// (keys are written in the order they are built here, as serde_json's
// `preserve_order` does for the Rust plugin).

import { Expansion, Metadata, PluginError, composition, isDns1035Label, rustDebug } from 'tessera-sdk';

/** The apiVersion of the composite this plugin expands. */
export const API_VERSION = 'platform.tessera.dev/v1alpha1';
// The Rust plugin's version (the workspace's) and description (its Cargo.toml).
const VERSION = '0.1.0';
const DESCRIPTION = 'Expands a Database composite into a Secret, ConfigMap, Service, StatefulSet and PodDisruptionBudget.';

/** The plugin's metadata, with the JSON schema of its settings. */
function metadata() {
  return new Metadata('database', VERSION)
    .description(DESCRIPTION)
    .handles(API_VERSION, 'Database')
    .settingsSchema({
      type: 'object',
      additionalProperties: false,
      properties: {
        storageClassName: { type: 'string', minLength: 1 },
        maxReplicas: { type: 'integer', minimum: 1, maximum: 16 },
      },
    });
}

const POSTGRES = {
  name: 'postgres',
  image: 'postgres',
  port: 5432,
  dataDir: '/var/lib/postgresql/data',
  configFile: 'postgresql.conf',
  config: "listen_addresses = '*'\nmax_connections = 100\nshared_buffers = 128MB\n",
};

const MYSQL = {
  name: 'mysql',
  image: 'mysql',
  port: 3306,
  dataDir: '/var/lib/mysql',
  configFile: 'my.cnf',
  config: '[mysqld]\nbind-address = 0.0.0.0\nmax_connections = 100\n',
};

const secretEnv = (name, secretName, key) => ({ name, valueFrom: { secretKeyRef: { name: secretName, key } } });

/**
 * Expands a `Database`.
 * @param {import('tessera-sdk').CompositionRequest} request
 * @returns {import('tessera-sdk').Expansion}
 */
function expand(request) {
  const spec = request.spec();
  const settings = request.settings();
  const engine = spec.oneOf('engine', ['postgres', 'mysql']) === 'postgres' ? POSTGRES : MYSQL;
  const version = spec.str('version');
  const maxReplicas = settings.optInt('maxReplicas') ?? 9;
  const replicas = spec.optIntIn('replicas', 1, maxReplicas) ?? 1;
  const storage = spec.quantity('storage');
  const storageClass = settings.optStr('storageClassName');

  const name = request.composite.name();
  // The name becomes the Service's (a DNS-1035 label) and the StatefulSet's,
  // whose pods carry `controller-revision-hash: <name>-<10 chars>` (at most
  // 63 characters).
  if (!isDns1035Label(name, 52)) {
    throw PluginError.at(
      'metadata.name',
      "metadata.name must be lowercase letters, digits and '-', starting with a letter, " +
        `at most 52 characters (it names the Service and the StatefulSet), got ${rustDebug(name)}`,
    );
  }
  const secretName = `${name}-credentials`;
  const configName = `${name}-config`;
  // A new object each time: the same JSON in several places of the output.
  const selector = () => ({ 'app.kubernetes.io/name': engine.name, 'app.kubernetes.io/instance': name });
  const labelled = (apiVersion, kind, childName) =>
    request
      .child(apiVersion, kind, childName)
      .withLabel('app.kubernetes.io/name', engine.name)
      .withLabel('app.kubernetes.io/instance', name)
      .withLabel('app.kubernetes.io/managed-by', 'tessera');

  const username = 'app';
  const password = request.credential(secretName, 'password', 24);
  const secret = labelled('v1', 'Secret', secretName)
    .with('type', 'Opaque')
    .withSecretData([
      ['username', username],
      ['password', password],
      ['database', name],
    ]);

  const config = labelled('v1', 'ConfigMap', configName).with('data', { [engine.configFile]: engine.config });

  const service = labelled('v1', 'Service', name).with('spec', {
    type: 'ClusterIP',
    selector: selector(),
    ports: [{ name: engine.name, port: engine.port, targetPort: engine.port, protocol: 'TCP' }],
  });

  const env =
    engine === POSTGRES
      ? [
          secretEnv('POSTGRES_USER', secretName, 'username'),
          secretEnv('POSTGRES_PASSWORD', secretName, 'password'),
          secretEnv('POSTGRES_DB', secretName, 'database'),
          { name: 'PGDATA', value: `${engine.dataDir}/pgdata` },
        ]
      : [
          secretEnv('MYSQL_USER', secretName, 'username'),
          secretEnv('MYSQL_PASSWORD', secretName, 'password'),
          secretEnv('MYSQL_ROOT_PASSWORD', secretName, 'password'),
          secretEnv('MYSQL_DATABASE', secretName, 'database'),
        ];
  const claimSpec = {
    accessModes: ['ReadWriteOnce'],
    resources: { requests: { storage } },
  };
  if (storageClass !== undefined) claimSpec.storageClassName = storageClass;
  const statefulset = labelled('apps/v1', 'StatefulSet', name).with('spec', {
    serviceName: name,
    replicas,
    selector: { matchLabels: selector() },
    template: {
      metadata: { labels: selector() },
      spec: {
        containers: [
          {
            name: engine.name,
            image: `${engine.image}:${version}`,
            ports: [{ name: engine.name, containerPort: engine.port }],
            env,
            volumeMounts: [
              { name: 'data', mountPath: engine.dataDir },
              { name: 'config', mountPath: `/etc/tessera/${engine.configFile}`, subPath: engine.configFile },
            ],
          },
        ],
        volumes: [{ name: 'config', configMap: { name: configName } }],
      },
    },
    volumeClaimTemplates: [{ metadata: { name: 'data' }, spec: claimSpec }],
  });

  const expansion = new Expansion().child(secret).child(config).child(service).child(statefulset);
  if (replicas > 1) {
    const pdb = labelled('policy/v1', 'PodDisruptionBudget', name).with('spec', {
      maxUnavailable: 1,
      selector: { matchLabels: selector() },
    });
    expansion.child(pdb);
  }

  const namespace = request.composite.namespace() ?? 'default';
  // Rust reads `status.readyReplicas` with `as_i64`: an integer, or not ready.
  const status = request.observedChild('apps/v1', 'StatefulSet', name)?.asValue().status;
  const readyReplicas = status !== null && typeof status === 'object' ? status.readyReplicas : undefined;
  const ready = Number.isSafeInteger(readyReplicas) && readyReplicas >= replicas;
  return expansion
    .status({
      endpoint: `${name}.${namespace}.svc.cluster.local:${engine.port}`,
      secretName,
      engine: engine.name,
    })
    .ready(ready);
}

// The build (guest-sdk/js/build.mjs) exports the world's functions from this.
export default composition({ metadata, expand });
