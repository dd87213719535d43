import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Stripe from 'stripe';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { paymentDeps, webhookDeps } from './deps.ts';

const stripe = new Stripe('sk_test_unused');
const body = JSON.stringify({ id: 'evt_1', object: 'event', type: 'customer.created', data: { object: {} } });
const signedWith = (secret: string) => stripe.webhooks.generateTestHeaderString({ payload: body, secret });

/** A Secrets Manager endpoint on 127.0.0.1 answering GetSecretValue from `secrets`, counting calls. */
const secrets = new Map<string, string>();
let fetches = 0;
let secretsManager: Server;
let secretsUrl: string;
beforeAll(async () => {
  secretsManager = createServer((request, response) => {
    let text = '';
    request.on('data', (chunk: Buffer) => (text += chunk.toString()));
    request.on('end', () => {
      fetches++;
      const { SecretId } = JSON.parse(text) as { SecretId: string };
      const value = secrets.get(SecretId);
      response.setHeader('content-type', 'application/x-amz-json-1.1');
      if (value === undefined) {
        response.statusCode = 400;
        response.end(JSON.stringify({ __type: 'ResourceNotFoundException', message: 'no such secret' }));
        return;
      }
      response.end(JSON.stringify({ ARN: SecretId, Name: SecretId, SecretString: value }));
    });
  });
  await new Promise<void>((resolve) => secretsManager.listen(0, '127.0.0.1', resolve));
  secretsUrl = `http://127.0.0.1:${(secretsManager.address() as AddressInfo).port}`;
});
afterAll(() => new Promise((resolve) => secretsManager.close(resolve)));

function environment(variables: Record<string, string>) {
  vi.stubEnv('AWS_REGION', 'us-east-1');
  vi.stubEnv('AWS_ACCESS_KEY_ID', 'local');
  vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'local');
  vi.stubEnv('AWS_ENDPOINT_URL_SECRETS_MANAGER', secretsUrl);
  vi.stubEnv('PAYMENTS_TABLE_NAME', 'payments-table');
  vi.stubEnv('REFUND_FUNCTION_NAME', 'refund-charge');
  for (const [name, value] of Object.entries(variables)) vi.stubEnv(name, value);
}

afterEach(() => {
  vi.unstubAllEnvs();
  secrets.clear();
  fetches = 0;
});

describe('webhook configuration', () => {
  it('takes one webhook secret', async () => {
    environment({ STRIPE_WEBHOOK_SECRET: 'whsec_only' });
    const { gateway } = webhookDeps();
    expect((await gateway.verifyWebhook(body, signedWith('whsec_only'))).id).toBe('evt_1');
    await expect(gateway.verifyWebhook(body, signedWith('whsec_other'))).rejects.toThrow(/does not match/);
  });

  it('takes several, comma-separated, while a secret is rolled: either one verifies', async () => {
    environment({ STRIPE_WEBHOOK_SECRET: ' whsec_new , whsec_old ' });
    const { gateway } = webhookDeps();
    expect((await gateway.verifyWebhook(body, signedWith('whsec_new'))).id).toBe('evt_1');
    expect((await gateway.verifyWebhook(body, signedWith('whsec_old'))).id).toBe('evt_1');
    await expect(gateway.verifyWebhook(body, signedWith('whsec_other'))).rejects.toThrow(/does not match/);
  });

  it.each(['whsec_new,sk_live_oops', ',', 'whsec_a b'])('refuses to start with %j', (value) => {
    environment({ STRIPE_WEBHOOK_SECRET: value });
    expect(() => webhookDeps()).toThrow(/STRIPE_WEBHOOK_SECRET/);
  });

  it('holds no API key: it cannot create, confirm or cancel an intent', async () => {
    environment({ STRIPE_WEBHOOK_SECRET: 'whsec_only', STRIPE_SECRET_KEY: 'sk_test_not_for_the_webhook' });
    const { gateway } = webhookDeps();
    expect(() => gateway.cancelIntent('order-1', 'pi_1')).toThrow(/no Stripe API key/);
  });

  it('reads its signing secret from Secrets Manager on the first signed request, once', async () => {
    const arn = 'arn:aws:secretsmanager:us-east-1:000000000000:secret:webhook-AbCdEf';
    secrets.set(arn, 'whsec_stored');
    environment({ STRIPE_WEBHOOK_SECRET_ARN: arn });
    const { gateway } = webhookDeps();
    expect(fetches).toBe(0);
    expect((await gateway.verifyWebhook(body, signedWith('whsec_stored'))).id).toBe('evt_1');
    expect((await gateway.verifyWebhook(body, signedWith('whsec_stored'))).id).toBe('evt_1');
    expect(fetches).toBe(1);
  });

  it('reads a rotated signing secret again after an hour, in a warm function', async () => {
    const arn = 'arn:aws:secretsmanager:us-east-1:000000000000:secret:rotated-AbCdEf';
    secrets.set(arn, 'whsec_before');
    environment({ STRIPE_WEBHOOK_SECRET_ARN: arn });
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const { gateway } = webhookDeps();
      expect((await gateway.verifyWebhook(body, signedWith('whsec_before'))).id).toBe('evt_1');
      secrets.set(arn, 'whsec_after');
      vi.setSystemTime(Date.now() + 3_601_000);
      expect((await gateway.verifyWebhook(body, signedWith('whsec_after'))).id).toBe('evt_1');
      expect(fetches).toBe(2);
    } finally {
      vi.useRealTimers();
    }
  });

  it('also reads the older JSON layout ({"webhookSecret": …})', async () => {
    const arn = 'arn:aws:secretsmanager:us-east-1:000000000000:secret:stripe-AbCdEf';
    secrets.set(arn, JSON.stringify({ apiKey: 'sk_test_x', webhookSecret: 'whsec_a,whsec_b' }));
    environment({ STRIPE_WEBHOOK_SECRET_ARN: arn });
    const { gateway } = webhookDeps();
    expect((await gateway.verifyWebhook(body, signedWith('whsec_b'))).id).toBe('evt_1');
  });

  it.each([
    ['without a Stripe-Signature header', () => undefined, /missing/],
    ['with a header that is no signature', () => 'hello', /not t=<unix time>,v1=<signature>/],
    // Dated when the test runs (not when the file loads), well past the 300 s tolerance either way.
    [
      'with a stale signature',
      () => `t=${Math.floor(Date.now() / 1000) - 400},v1=abc`,
      /more than 300 s old/,
    ],
    [
      'with a signature dated in the future',
      () => `t=${Math.floor(Date.now() / 1000) + 400},v1=abc`,
      /future/,
    ],
  ])('refuses a request %s before it fetches any secret', async (_case, header, message) => {
    environment({ STRIPE_WEBHOOK_SECRET_ARN: 'arn:aws:secretsmanager:us-east-1:000000000000:secret:x' });
    const { gateway } = webhookDeps();
    await expect(gateway.verifyWebhook(body, header())).rejects.toThrow(message);
    expect(fetches).toBe(0);
  });

  it('tries the secret again on the next request when a fetch failed', async () => {
    const arn = 'arn:aws:secretsmanager:us-east-1:000000000000:secret:late-AbCdEf';
    environment({ STRIPE_WEBHOOK_SECRET_ARN: arn });
    const { gateway } = webhookDeps();
    await expect(gateway.verifyWebhook(body, signedWith('whsec_late'))).rejects.toThrow();
    secrets.set(arn, 'whsec_late');
    expect((await gateway.verifyWebhook(body, signedWith('whsec_late'))).id).toBe('evt_1');
    expect(fetches).toBe(2);
  });
});

describe('payment step configuration', () => {
  it('reads the API key from its own secret, plain or as {"apiKey": …}', async () => {
    const arn = 'arn:aws:secretsmanager:us-east-1:000000000000:secret:api-key-AbCdEf';
    for (const stored of ['sk_test_plain', JSON.stringify({ apiKey: 'sk_test_plain' })]) {
      secrets.set(arn, stored);
      environment({ STRIPE_API_KEY_SECRET_ARN: arn });
      const { gateway } = await paymentDeps();
      // It holds no webhook secret: verifying is the webhook's alone.
      expect(() => gateway.verifyWebhook(body, signedWith('whsec_any'))).toThrow(/without a webhook secret/);
    }
  });

  it('refuses to start without a key, or with a secret that holds no sk_ key', async () => {
    environment({});
    await expect(paymentDeps()).rejects.toThrow(/STRIPE_API_KEY_SECRET_ARN, or STRIPE_SECRET_KEY/);
    const arn = 'arn:aws:secretsmanager:us-east-1:000000000000:secret:wrong-AbCdEf';
    secrets.set(arn, 'whsec_not_a_key');
    environment({ STRIPE_API_KEY_SECRET_ARN: arn });
    await expect(paymentDeps()).rejects.toThrow(/starts with sk_/);
  });
});
