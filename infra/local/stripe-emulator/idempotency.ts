import { ApiError, type HttpAnswer } from './errors.ts';

/*
 * Idempotency keys as Stripe keeps them: the first answer to a POST with a key is stored (unless it
 * was a parameter validation failure) and replayed for every later request with that key, for 24
 * hours; the key used on another endpoint or with other parameters is an idempotency_error.
 */

const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;

/** What a key remembers: the request it was first used for and the answer given. */
interface RememberedResponse {
  endpoint: string;
  /** The parameters, canonical (form.ts `fingerprint`). */
  fingerprint: string;
  status: number;
  body: string;
  requestId: string;
}

export class IdempotencyKeys {
  readonly #stored = new Map<string, RememberedResponse & { storedAt: number }>();

  remember(key: string, response: RememberedResponse): void {
    this.#stored.set(key, { ...response, storedAt: Date.now() });
  }

  /** A stored answer for a reused key, an idempotency_error if the key was used differently, or undefined. */
  replay(key: string, endpoint: string, print: string): HttpAnswer | undefined {
    this.#forgetExpiredKeys();
    const stored = this.#stored.get(key);
    if (!stored) return undefined;
    const retryHint = `Try using a key other than '${key}' if you meant to execute a different request.`;
    if (stored.endpoint !== endpoint) {
      throw new ApiError(400, {
        type: 'idempotency_error',
        message: `Keys for idempotent requests can only be used for the same endpoint they were first used for ('${stored.endpoint}' vs '${endpoint}'). ${retryHint}`,
      });
    }
    if (stored.fingerprint !== print) {
      throw new ApiError(400, {
        type: 'idempotency_error',
        message: `Keys for idempotent requests can only be used with the same parameters they were first used with. ${retryHint}`,
      });
    }
    return {
      status: stored.status,
      body: stored.body,
      headers: {
        'Idempotency-Key': key,
        'Idempotent-Replayed': 'true',
        'Original-Request': stored.requestId,
        // A stored 500 answers every retry with this key: the SDK must not keep trying.
        ...(stored.status >= 500 ? { 'Stripe-Should-Retry': 'false' } : {}),
      },
    };
  }

  /** Keys are kept 24 hours; the map is in insertion (hence time) order, so expired keys come first. */
  #forgetExpiredKeys(): void {
    const cutoff = Date.now() - IDEMPOTENCY_TTL_MS;
    for (const [key, stored] of this.#stored) {
      if (stored.storedAt >= cutoff) return;
      this.#stored.delete(key);
    }
  }
}
