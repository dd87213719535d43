/*
 * What the outbox's writer and reader agree on, and nothing else: this module imports nothing, so a
 * reader (the bridge) does not pull in the DynamoDB client with it.
 */

/** The `kind` of an outbox item: the marker every stream filter on the tables selects on. */
export const OUTBOX_KIND = 'event';

/** The aggregate item's attribute holding the last sequence its events used. */
export const SEQUENCE_ATTRIBUTE = 'eventSequence';
