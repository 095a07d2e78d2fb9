// The plugin's refusal: an answer, not a crash (the WIT `plugin-error`).

/**
 * The plugin refuses its input. The host shows `message` (and `field`) to the
 * user as the plugin's answer, not as a crash. Throw it (or let a field
 * reader throw it) from `expand` / `validate`.
 */
export class PluginError extends Error {
  /**
   * @param {string} message
   * @param {string} [field] dotted path of the offending field
   */
  constructor(message, field) {
    super(message);
    this.name = 'PluginError';
    /** @type {string | undefined} */
    this.field = field ?? undefined;
  }

  /** An error about one field, given by its dotted path (`spec.replicas`). */
  static at(field, message) {
    return new PluginError(message, field);
  }

  /** @internal the WIT record */
  toWit() {
    // `null` is `none` for both engines (componentize-js takes undefined too).
    return { message: String(this.message), field: this.field ?? null };
  }
}
