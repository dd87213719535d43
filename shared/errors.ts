/**
 * The error model. Domain code throws these (or returns outcome values for expected business
 * results); only the HTTP edge (shared/http.ts) turns them into status codes.
 */
export interface ErrorDetail {
  path: string;
  message: string;
}

/** Base of every error a client can cause; `code` is the contract's SCREAMING_SNAKE code. */
export class ClientError extends Error {
  readonly code: string;
  readonly details: ErrorDetail[];
  constructor(code: string, message: string, details: ErrorDetail[] = [], options?: ErrorOptions) {
    super(message, options);
    this.name = 'ClientError';
    this.code = code;
    this.details = details;
  }
}

export class ValidationError extends ClientError {
  constructor(
    message: string,
    details: ErrorDetail[] = [],
    code = 'VALIDATION_FAILED',
    options?: ErrorOptions,
  ) {
    super(code, message, details, options);
    this.name = 'ValidationError';
  }
}

export class NotFoundError extends ClientError {
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(code, message, [], options);
    this.name = 'NotFoundError';
  }
}

export class ConflictError extends ClientError {
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(code, message, [], options);
    this.name = 'ConflictError';
  }
}

export class PayloadTooLargeError extends ClientError {
  constructor(limitBytes: number, options?: ErrorOptions) {
    super('PAYLOAD_TOO_LARGE', `The request body is larger than ${limitBytes} bytes.`, [], options);
    this.name = 'PayloadTooLargeError';
  }
}

export class UnsupportedMediaTypeError extends ClientError {
  constructor(expected: string, options?: ErrorOptions) {
    super('UNSUPPORTED_MEDIA_TYPE', `The request body must be ${expected}.`, [], options);
    this.name = 'UnsupportedMediaTypeError';
  }
}

/** Configuration is missing or malformed: the function refuses to start. */
export class ConfigError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ConfigError';
  }
}
