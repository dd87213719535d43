import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_LOCAL_JWT_SECRET,
  LOCAL_JWT_AUDIENCE,
  LOCAL_JWT_ISSUER,
  localJwtAuthorizer,
  signLocalToken,
} from './auth.ts';

const secret = DEFAULT_LOCAL_JWT_SECRET;
const authorizer = localJwtAuthorizer({ secret, issuer: LOCAL_JWT_ISSUER, audience: [LOCAL_JWT_AUDIENCE] });
const bearer = (token: string) => `Bearer ${token}`;

/** A token as a client might forge or misconfigure it. */
function token(claims: Record<string, unknown>, options: { key?: string; exp?: number | string } = {}) {
  const jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer(LOCAL_JWT_ISSUER)
    .setAudience(LOCAL_JWT_AUDIENCE)
    .setSubject('c-1')
    .setIssuedAt()
    .setExpirationTime(options.exp ?? '5m');
  return jwt.sign(new TextEncoder().encode(options.key ?? secret));
}

describe('the local JWT authorizer', () => {
  it("lets a good token in with API Gateway's context: string claims and the parsed scopes", async () => {
    const decision = await authorizer.authorize(
      bearer(await token({ scope: 'orders orders/admin', n: 3 })),
      [],
    );
    expect(decision.allowed).toBe(true);
    if (!decision.allowed) return;
    expect(decision.authorizer.jwt.scopes).toEqual(['orders', 'orders/admin']);
    expect(decision.authorizer.jwt.claims).toMatchObject({
      sub: 'c-1',
      iss: LOCAL_JWT_ISSUER,
      aud: LOCAL_JWT_AUDIENCE,
      n: '3',
      scope: 'orders orders/admin',
    });
    expect(decision.authorizer.jwt.claims.exp).toMatch(/^\d+$/);
  });

  it.each([
    ['no Authorization header', async () => undefined],
    ['a scheme other than Bearer', async () => `Basic ${Buffer.from('a:b').toString('base64')}`],
    ['an expired token', async () => bearer(await token({}, { exp: Math.floor(Date.now() / 1000) - 60 }))],
    ['another key', async () => bearer(await token({}, { key: 'x'.repeat(48) }))],
    ['not a JWT', async () => 'Bearer not.a.jwt'],
    [
      'another issuer',
      async () =>
        bearer(
          await new SignJWT({})
            .setProtectedHeader({ alg: 'HS256' })
            .setIssuer('someone-else')
            .setAudience(LOCAL_JWT_AUDIENCE)
            .setExpirationTime('5m')
            .sign(new TextEncoder().encode(secret)),
        ),
    ],
    [
      'another audience',
      async () =>
        bearer(
          await new SignJWT({})
            .setProtectedHeader({ alg: 'HS256' })
            .setIssuer(LOCAL_JWT_ISSUER)
            .setAudience('another-api')
            .setExpirationTime('5m')
            .sign(new TextEncoder().encode(secret)),
        ),
    ],
    [
      'an unsigned token (alg none)',
      async () => {
        const body = Buffer.from(
          JSON.stringify({ sub: 'c-1', iss: LOCAL_JWT_ISSUER, aud: LOCAL_JWT_AUDIENCE, exp: 9e9 }),
        );
        return `Bearer ${Buffer.from('{"alg":"none"}').toString('base64url')}.${body.toString('base64url')}.`;
      },
    ],
  ])('answers 401 Unauthorized for %s', async (_what, header) => {
    const decision = await authorizer.authorize(await header(), []);
    expect(decision).toMatchObject({ allowed: false, statusCode: 401, body: { message: 'Unauthorized' } });
  });

  it('answers 403 Forbidden to a good token without the scope the route requires', async () => {
    const customer = await signLocalToken({ secret, sub: 'c-1' });
    expect(await authorizer.authorize(bearer(customer), ['orders/admin'])).toMatchObject({
      allowed: false,
      statusCode: 403,
      body: { message: 'Forbidden' },
    });
    const admin = await signLocalToken({ secret, sub: 'ops-1', admin: true });
    expect((await authorizer.authorize(bearer(admin), ['orders/admin'])).allowed).toBe(true);
  });

  it('signs tokens (npm run token) that expire when asked', async () => {
    const short = await signLocalToken({ secret, sub: 'c-1', expiresIn: '90s' });
    const decision = await authorizer.authorize(bearer(short), []);
    if (!decision.allowed) throw new Error('refused');
    const { exp, iat } = decision.authorizer.jwt.claims;
    expect(Number(exp) - Number(iat)).toBe(90);
  });
});
