import { httpRoute } from '../../shared/http.ts';

/** GET /health */
export const handler = httpRoute({}, async () => ({ statusCode: 200, body: { status: 'ok' } }));
