import { errors, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import { DEFAULT_ADMIN_SCOPE } from '../../shared/caller.ts';

/*
 * LOCAL_AUTH=jwt (CONTRACT §1): the local gateway checks bearer tokens as API Gateway's JWT
 * authorizer does, with an HS256 key instead of the issuer's published keys. Verification and
 * signing are the `jose` library's; this file only names the local issuer and maps the outcome to
 * API Gateway's answers.
 */

/** The issuer and audience of local tokens; the stack is synthesized with them under LOCAL_AUTH=jwt. */
export const LOCAL_JWT_ISSUER = 'order-saga-local';
export const LOCAL_JWT_AUDIENCE = 'order-saga';
/** The HS256 key of local tokens unless LOCAL_JWT_SECRET says otherwise (printed in the README). */
export const DEFAULT_LOCAL_JWT_SECRET = 'order-saga-local-jwt-secret-for-development-only';
export { DEFAULT_ADMIN_SCOPE };

/** What API Gateway's JWT authorizer hands a payload 2.0 handler in `requestContext.authorizer`. */
export interface JwtAuthorizerContext {
  jwt: { claims: Record<string, string>; scopes: string[] | null };
}

export type AuthorizerDecision =
  | { allowed: true; authorizer: JwtAuthorizerContext }
  | { allowed: false; statusCode: 401 | 403; body: { message: string }; headers: Record<string, string> };

/**
 * API Gateway hands claims over as strings: numbers and booleans as their text, arrays as
 * `[a b]`, objects as JSON.
 */
function claimText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return `[${value.map(claimText).join(' ')}]`;
  if (value !== null && typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

function scopesOf(payload: JWTPayload): string[] | null {
  const scope = payload.scope ?? payload.scp;
  if (typeof scope === 'string') return scope.split(' ').filter(Boolean);
  if (Array.isArray(scope)) return scope.map(String);
  return null;
}

const unauthorized = (why: string): AuthorizerDecision => ({
  allowed: false,
  statusCode: 401,
  body: { message: 'Unauthorized' },
  headers: { 'www-authenticate': `Bearer error="invalid_token" error_description="${why}"` },
});

export interface JwtAuthorizer {
  /** Checks a request's `Authorization` header against a route's required scopes (any one suffices). */
  authorize(
    authorization: string | undefined,
    requiredScopes: readonly string[],
  ): Promise<AuthorizerDecision>;
}

export function localJwtAuthorizer(options: {
  secret: string;
  issuer: string;
  audience: string[];
}): JwtAuthorizer {
  const key = new TextEncoder().encode(options.secret);
  return {
    async authorize(authorization, requiredScopes) {
      const token = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '')?.[1];
      if (!token) return unauthorized('the token is missing');
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, key, {
          algorithms: ['HS256'],
          issuer: options.issuer,
          audience: options.audience,
        }));
      } catch (error) {
        const why =
          error instanceof errors.JWTExpired
            ? 'the token has expired'
            : error instanceof errors.JWTClaimValidationFailed
              ? `the token's ${error.claim} is not accepted`
              : 'the token is not valid';
        return unauthorized(why);
      }
      const scopes = scopesOf(payload);
      if (requiredScopes.length > 0 && !requiredScopes.some((scope) => scopes?.includes(scope))) {
        return {
          allowed: false,
          statusCode: 403,
          body: { message: 'Forbidden' },
          headers: {
            'www-authenticate': `Bearer error="insufficient_scope" scope="${requiredScopes.join(' ')}"`,
          },
        };
      }
      const claims = Object.fromEntries(
        Object.entries(payload).map(([name, value]) => [name, claimText(value)]),
      );
      return { allowed: true, authorizer: { jwt: { claims, scopes } } };
    },
  };
}

/** Signs a local token (`npm run token`); `expiresIn` is a span from now, as jose reads it (`1h`, `15m`, `90s`). */
export async function signLocalToken(options: {
  secret: string;
  sub: string;
  admin?: boolean;
  expiresIn?: string;
  adminScope?: string;
}): Promise<string> {
  const scope = options.admin ? (options.adminScope ?? DEFAULT_ADMIN_SCOPE) : undefined;
  return new SignJWT(scope ? { scope } : {})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(options.sub)
    .setIssuer(LOCAL_JWT_ISSUER)
    .setAudience(LOCAL_JWT_AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? '1h')
    .sign(new TextEncoder().encode(options.secret));
}
