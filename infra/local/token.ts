import { parseArgs } from 'node:util';
import { ConfigError } from '../../shared/errors.ts';
import { signLocalToken } from './auth.ts';
import { localConfigFrom } from './config.ts';

/*
 * `npm run token -- --sub c-1 [--admin] [--expires 1h]`: prints a bearer token for the local
 * runtime under LOCAL_AUTH=jwt, signed with LOCAL_JWT_SECRET (or the README's default):
 *   curl -H "Authorization: Bearer $(npm run -s token -- --sub c-1)" http://127.0.0.1:3000/orders/…
 */
const usage = 'usage: npm run token -- --sub CUSTOMER [--admin] [--expires 1h]';
try {
  const { values } = parseArgs({
    options: {
      sub: { type: 'string' },
      admin: { type: 'boolean', default: false },
      expires: { type: 'string', default: '1h' },
    },
  });
  if (!values.sub) throw new ConfigError(`--sub is required\n${usage}`);
  if (!/^\d+[smhd]?$/.test(values.expires))
    throw new ConfigError(`--expires must be a span such as 90s, 15m, 1h or 7d, not "${values.expires}"`);
  const config = localConfigFrom(process.env);
  console.log(
    await signLocalToken({
      secret: config.LOCAL_JWT_SECRET,
      sub: values.sub,
      admin: values.admin,
      expiresIn: /^\d+$/.test(values.expires) ? `${values.expires}s` : values.expires,
    }),
  );
} catch (error) {
  console.error(`token: ${error instanceof Error ? error.message : String(error)}`);
  if (!(error instanceof ConfigError)) console.error(usage);
  process.exit(2);
}
