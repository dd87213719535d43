import type { APIGatewayProxyEventV2 } from 'aws-lambda';

/** The scope that makes a token a shop admin's, unless the stack is given another (`adminScope`). */
export const DEFAULT_ADMIN_SCOPE = 'orders/admin';

/**
 * Who is calling, as the route's authorizer established it:
 * - a customer: a JWT without the admin scope; `customerId` is its `sub` (`''` when it has none,
 *   which names nobody and so owns nothing);
 * - the back office: a JWT with the admin scope, an IAM-signed request, or a request that met no
 *   authorizer (the local runtime with `LOCAL_AUTH=none`, as SAM and other emulators behave). The
 *   back office may act on every customer's orders.
 */
export type Caller =
  | { kind: 'customer'; customerId: string }
  | { kind: 'backOffice'; via: 'admin-token' | 'iam' | 'no-authorizer' };

/** The parts of payload 2.0's authorizer context that the `aws-lambda` event type leaves out. */
interface AuthorizerContext {
  jwt?: { claims?: Record<string, unknown>; scopes?: string[] | null };
  iam?: unknown;
}

function scopesOf(jwt: NonNullable<AuthorizerContext['jwt']>): string[] {
  if (Array.isArray(jwt.scopes)) return jwt.scopes;
  const scope = jwt.claims?.scope ?? jwt.claims?.scp;
  return typeof scope === 'string' ? scope.split(' ').filter(Boolean) : [];
}

export function callerOf(
  event: APIGatewayProxyEventV2,
  adminScope: string = process.env.ADMIN_SCOPE ?? DEFAULT_ADMIN_SCOPE,
): Caller {
  const authorizer = (event.requestContext as { authorizer?: AuthorizerContext } | undefined)?.authorizer;
  if (authorizer?.jwt) {
    if (scopesOf(authorizer.jwt).includes(adminScope)) return { kind: 'backOffice', via: 'admin-token' };
    const sub = authorizer.jwt.claims?.sub;
    return { kind: 'customer', customerId: typeof sub === 'string' ? sub : '' };
  }
  return { kind: 'backOffice', via: authorizer?.iam ? 'iam' : 'no-authorizer' };
}
