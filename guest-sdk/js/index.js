// tessera-sdk: write Tessera plugins in JavaScript (see README.md).
export { PluginError } from './src/errors.js';
export { Fields, isDns1035Label, isQuantity } from './src/fields.js';
export { rustDebug } from './src/debug.js';
export { KubeObject, base64Encode, base64Decode } from './src/object.js';
export { CompositionRequest, Condition, Expansion, Finding, Metadata, Review, Verdict } from './src/types.js';
export * as host from './src/host.js';
export { composition, policy } from './src/register.js';
