import { z } from 'zod';
import {
  CancellationReasonSchema,
  CurrencySchema,
  MinorUnitsSchema,
  OrderIdSchema,
  OrderLineSchema,
  OrderStatusSchema,
  SagaStateSchema,
  SkuSchema,
} from '../events/common.ts';
import { CreateOrderRequestSchema, DEFAULT_CURRENCY } from '../functions/orders/order.ts';
import { AdjustStockRequestSchema, PutProductRequestSchema } from '../functions/inventory/stock.ts';
import packageJson from '../package.json' with { type: 'json' };
import { ERROR_CODES, MAX_BODY_BYTES, type ErrorCode } from '../shared/errors.ts';

/*
 * The OpenAPI 3.1 document of the HTTP API (CONTRACT §2). Request bodies and the shared types come
 * from the zod schemas the handlers validate with; response shapes are declared here and checked
 * against what the code returns by docs/openapi.test.ts. `npm run docs:openapi` writes docs/openapi.json.
 */

type Json = Record<string, unknown>;

// The codes and their statuses are the HTTP edge's own registry (shared/errors.ts).
export { ERROR_CODES, type ErrorCode };

/** The message each error carries, as the code words it (`{…}` is filled in). */
const ERROR_EXAMPLES: Record<
  ErrorCode,
  { message: string; details?: Array<{ path: string; message: string }> }
> = {
  VALIDATION_FAILED: {
    message: 'The request body is invalid.',
    details: [
      { path: 'items.0.quantity', message: 'Too big: expected number to be <=999' },
      { path: '', message: 'Unrecognized key: "note"' },
    ],
  },
  INVALID_JSON: { message: 'The request body is not valid JSON.' },
  MISSING_SIGNATURE: { message: 'The Stripe-Signature header is missing.' },
  INVALID_SIGNATURE: { message: 'The Stripe-Signature does not match this body.' },
  INVALID_CURSOR: {
    message: 'The cursor is not one this query returned.',
    details: [{ path: 'cursor', message: 'Invalid cursor' }],
  },
  CUSTOMER_MISMATCH: { message: 'An order can only be placed for the customer the token names.' },
  ORDER_NOT_FOUND: { message: 'Order 0b6f3a9e-2f4d-4c41-9a8e-5d2b7c1e4f60 does not exist.' },
  PRODUCT_NOT_FOUND: { message: 'Product tee-classic-black does not exist.' },
  IDEMPOTENCY_KEY_REUSED: { message: 'This Idempotency-Key was already used with a different request body.' },
  ORDER_NOT_CANCELLABLE: {
    message: 'Order 0b6f3a9e-2f4d-4c41-9a8e-5d2b7c1e4f60 is completed and can no longer be cancelled.',
  },
  INSUFFICIENT_STOCK: {
    message: 'Product tee-classic-black has 4 units available; removing 6 would leave fewer than none.',
  },
  PRECONDITION_FAILED: {
    message: 'Product tee-classic-black changed since it was read (its ETag is now "8"); read it again.',
  },
  PAYLOAD_TOO_LARGE: { message: `The request body is larger than ${MAX_BODY_BYTES} bytes.` },
  UNSUPPORTED_MEDIA_TYPE: { message: 'The request body must be application/json.' },
  INTERNAL_ERROR: { message: 'Something went wrong on our side.' },
};

export function errorExample(code: ErrorCode) {
  const { message, details = [] } = ERROR_EXAMPLES[code];
  return { error: { code, message, details } };
}

// Response shapes the handlers build (functions/inventory/stock.ts `Product`, functions/orders/order.ts `orderView`).
const Timestamp = z.iso.datetime();
const ProductSchema = z.object({
  sku: SkuSchema,
  name: z.string(),
  unitPrice: MinorUnitsSchema,
  currency: CurrencySchema,
  available: z.number().int().nonnegative(),
  reserved: z.number().int().nonnegative(),
  lowStockThreshold: z.number().int().nonnegative(),
  updatedAt: Timestamp,
});
const PaymentLastErrorSchema = z.object({
  code: z.string().meta({ description: "Stripe's error code, e.g. `card_declined`." }),
  declineCode: z.string().optional().meta({ description: "The issuer's reason, e.g. `insufficient_funds`." }),
  message: z.string().meta({ description: "Stripe's sentence, fit to show the customer." }),
});
const OrderPaymentSchema = z.object({
  paymentIntentId: z.string(),
  status: z.string(),
  clientSecret: z.string().optional(),
  lastError: PaymentLastErrorSchema.optional(),
});
const HistoryEntrySchema = z.object({ sagaState: SagaStateSchema, at: Timestamp });
const CancellationDetailSchema = z.object({
  declineCode: z.string().optional().meta({
    description:
      "`PAYMENT_FAILED`: Stripe's code for the failure, the issuer's decline code when there is one (e.g. `generic_decline`, `insufficient_funds`), else Stripe's error code (e.g. `card_declined`, or `amount_too_small` / `amount_too_large` when the amount is outside what Stripe charges).",
  }),
  skus: z.array(SkuSchema).optional().meta({
    description:
      "`OUT_OF_STOCK`: the SKUs that were short; `UNKNOWN_PRODUCT`: the SKUs not sold in the order's currency, or not at all.",
  }),
  message: z.string().optional().meta({
    description:
      "A sentence about the outcome, fit to show the customer (for a decline, Stripe's). Never present for `PROCESSING_ERROR`.",
  }),
});
const OrderSchema = z.object({
  orderId: OrderIdSchema,
  customerId: z.string(),
  items: z.array(OrderLineSchema),
  amount: MinorUnitsSchema.optional(),
  currency: CurrencySchema,
  status: OrderStatusSchema,
  sagaState: SagaStateSchema,
  cancellationReason: CancellationReasonSchema.optional(),
  cancellationDetail: CancellationDetailSchema.optional(),
  cancelRequestedAt: Timestamp.optional().meta({
    description:
      'When the customer asked to cancel (`POST /orders/{orderId}/cancel`) and the cancel was accepted (`202`). The order then ends `CANCELLED`, with `CUSTOMER_CANCELLED` unless it was already being cancelled for another reason.',
  }),
  payment: OrderPaymentSchema.optional(),
  history: z.array(HistoryEntrySchema),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});
const ReservationStatusSchema = z.enum(['ACTIVE', 'CONFIRMED', 'RELEASED', 'EXPIRED']);
const ReservationSchema = z.object({
  reservationId: z.string(),
  orderId: OrderIdSchema,
  sku: SkuSchema,
  quantity: z.number().int().min(1).max(999),
  status: ReservationStatusSchema,
  expiresAt: Timestamp,
  createdAt: Timestamp,
});
const ReservationPageSchema = z.object({
  items: z.array(ReservationSchema),
  nextCursor: z.string().optional(),
});
const ProductPageSchema = z.object({
  items: z.array(ProductSchema),
  nextCursor: z.string().optional(),
});

function componentSchemas(): Record<string, Json> {
  const registry = z.registry<{ id: string; description?: string }>();
  const add = (schema: z.ZodType, id: string, description?: string) =>
    registry.add(schema, { id, ...(description ? { description } : {}) });
  add(SkuSchema, 'Sku', 'A stock keeping unit: 1-64 characters of `A-Z a-z 0-9 . _ -`.');
  add(
    CurrencySchema,
    'Currency',
    'An ISO 4217 code. Requests may use either case; the API stores and answers it in lower case, as Stripe does.',
  );
  add(MinorUnitsSchema, 'MinorUnits', "Money as an integer in the currency's minor unit (cents).");
  add(
    OrderStatusSchema,
    'OrderStatus',
    '`PENDING` → `STOCK_RESERVED` → `PAYMENT_PENDING` → `COMPLETED`, or `CANCELLED`.',
  );
  add(
    SagaStateSchema,
    'SagaState',
    '`STARTED` → `STOCK_RESERVED` → `PAYMENT_PENDING` → `COMPLETED`, or on a failure before the stock is sold `COMPENSATING` → `COMPENSATED`. A compensation that itself fails leaves `COMPENSATING`; a paid and sold order that cannot be completed stays `PAYMENT_PENDING` (in both cases the execution fails and alarms).',
  );
  add(CancellationReasonSchema, 'CancellationReason', 'Why an order was cancelled.');
  add(
    OrderLineSchema,
    'OrderLine',
    '`unitPrice` (minor units) appears once the stock is reserved: it is the catalogue price at reservation time.',
  );
  add(
    CreateOrderRequestSchema,
    'CreateOrderRequest',
    `\`customerId\` may be left out by a customer signed in with a token: the order is for the token's \`sub\`, and a \`customerId\` that differs is \`403 CUSTOMER_MISMATCH\`. The back office (IAM, or a token with the admin scope) must name the customer. Unknown fields are rejected. SKUs are not looked up here: an unknown one cancels the order (\`UNKNOWN_PRODUCT\`) once its saga runs. Lines with the same sku are merged; a merged line over 999 is rejected. \`currency\` defaults to \`${DEFAULT_CURRENCY}\`; every product of the order must be sold in it, or the order is cancelled with \`UNKNOWN_PRODUCT\`. \`paymentMethodId\` is a Stripe PaymentMethod; without one the PaymentIntent waits for the client to confirm it.`,
  );
  add(
    PutProductRequestSchema,
    'PutProductRequest',
    'Unknown fields are rejected. `available` is the stock free to sell; units held by active reservations stay held (and counted in `reserved`). `lowStockThreshold` defaults to 0.',
  );
  add(
    AdjustStockRequestSchema,
    'AdjustStockRequest',
    'Unknown fields are rejected. `delta` adds units (positive) or removes them (negative), never 0; `reason` is kept with the adjustment for the record (e.g. `stock count`, `damaged`).',
  );
  add(Timestamp, 'Timestamp', 'An ISO 8601 time in UTC.');
  add(ProductSchema, 'Product');
  add(
    OrderPaymentSchema,
    'OrderPayment',
    "`status` is the PaymentIntent status. While the order is `PAYMENT_PENDING` it shows the PaymentIntent as created (`requires_payment_method` until confirmed) with its `clientSecret`, with which the customer confirms it (Stripe.js, the publishable key); on completion the settled payment without `clientSecret`; a cancelled order shows none. `clientSecret` is shown only to the order's customer (a token whose `sub` is the order's `customerId`) and to a backend that checks out for them (IAM, or the local runtime without `LOCAL_AUTH=jwt`); never to a shop admin's token, and never once the customer asked to cancel. `lastError` is the last declined attempt of a payment the customer confirms in the browser: the order keeps waiting, and the customer may confirm again with another card until the payment timeout. `GET /orders/{orderId}` reads it from the payments service when asked (it never travels through the saga's state or history); other answers that show the order (a replayed `POST /orders`, the cancel) leave it out unless the order stored it.",
  );
  add(
    PaymentLastErrorSchema,
    'PaymentLastError',
    "A declined attempt, from the PaymentIntent's `last_payment_error`.",
  );
  add(HistoryEntrySchema, 'HistoryEntry');
  add(
    CancellationDetailSchema,
    'CancellationDetail',
    'Why the order ended, beyond `cancellationReason`, when the outcome said more: which fields appear depends on the reason. Absent when there is nothing to add, and always for `PROCESSING_ERROR` (a fault or a bug, whose details stay internal).',
  );
  add(
    OrderSchema,
    'Order',
    "`amount` and the lines' `unitPrice` appear once the stock is reserved; `cancellationReason` once the saga starts compensating: every cancelled order has one, `PROCESSING_ERROR` when a step kept failing after its retries (or failed in a way no retry changes) before any money was kept. `cancellationDetail` comes with the reason when the outcome said more (the decline code, the SKUs that were short or unknown); `cancelRequestedAt` once the customer asked to cancel.",
  );
  add(
    ReservationStatusSchema,
    'ReservationStatus',
    '`ACTIVE`, `CONFIRMED` (sold), `RELEASED` (compensated), `EXPIRED`.',
  );
  add(
    ReservationSchema,
    'Reservation',
    "One line of one order's reservation. `expiresAt` is when the hold ends; an `ACTIVE` hold past it reads `EXPIRED` even before the sweeper has returned its stock.",
  );
  add(ReservationPageSchema, 'ReservationPage');
  add(ProductPageSchema, 'ProductPage');

  const { schemas } = z.toJSONSchema(registry, {
    target: 'draft-2020-12',
    io: 'input',
    metadata: registry,
    uri: (id) => `#/components/schemas/${id}`,
  });
  // OpenAPI 3.1 schemas already use the 2020-12 dialect; a fragment `$id` is not allowed there.
  return Object.fromEntries(
    Object.entries(schemas).map(([id, { $schema: _dialect, $id: _id, ...schema }]) => [id, schema as Json]),
  );
}

const ref = (id: string) => ({ $ref: `#/components/schemas/${id}` });
const json = (schema: Json, examples?: Record<string, Json>) => ({
  'application/json': { schema, ...(examples ? { examples } : {}) },
});

function errorResponse(description: string, codes: ErrorCode[]) {
  const examples = Object.fromEntries(
    codes.map((code) => [code, { summary: ERROR_CODES[code].description, value: errorExample(code) }]),
  );
  return { description, content: json(ref('Error'), examples) };
}

const responses = {
  BadRequest: errorResponse('Invalid JSON, fields, path or header.', ['VALIDATION_FAILED', 'INVALID_JSON']),
  InvalidPath: errorResponse('The path parameter is invalid.', ['VALIDATION_FAILED']),
  PayloadTooLarge: errorResponse(`The body is larger than ${MAX_BODY_BYTES} bytes.`, ['PAYLOAD_TOO_LARGE']),
  UnsupportedMediaType: errorResponse('The body is not `application/json`.', ['UNSUPPORTED_MEDIA_TYPE']),
  InternalError: errorResponse('A server-side fault. Nothing about the request was wrong.', [
    'INTERNAL_ERROR',
  ]),
};
/** What API Gateway's authorizer answers before any handler runs (and the local gateway under LOCAL_AUTH=jwt). */
const gatewayResponses = {
  Unauthorized: {
    description:
      'The JWT authorizer refused the request: no `Authorization: Bearer` token, or one that is badly signed, expired, or from another issuer or audience.',
    content: json(ref('GatewayMessage'), { Unauthorized: { value: { message: 'Unauthorized' } } }),
  },
  Forbidden: {
    description: 'The token is good but lacks the scope the route requires (the admin scope).',
    content: json(ref('GatewayMessage'), { Forbidden: { value: { message: 'Forbidden' } } }),
  },
};
const responseRef = (name: keyof typeof responses | keyof typeof gatewayResponses) => ({
  $ref: `#/components/responses/${name}`,
});

// CONTRACT §2 authorization; the scheme names are used by the security requirements below.
const PUBLIC: Json[] = [];
const CUSTOMER: Json[] = [{ jwt: [] }, { sigv4: [] }];
const ADMIN: Json[] = [{ jwt: ['orders/admin'] }, { sigv4: [] }];

const skuParameter = { name: 'sku', in: 'path', required: true, schema: ref('Sku') };
const etagHeader = {
  ETag: {
    description:
      'The product\'s version as a strong entity tag, e.g. `"7"`. Every change of the product (an edit, an adjustment, a reservation, a sale, a release) gives it a new one.',
    schema: { type: 'string', pattern: '^"[0-9]+"$' },
  },
};
const ifMatchParameter = {
  name: 'If-Match',
  in: 'header',
  required: false,
  description:
    'Makes the write conditional (RFC 9110): the product\'s `ETag` as it was read, so that the write never overwrites stock that moved since; `*` for "the product must exist". On a mismatch (or any other value, which can match no product) `412 PRECONDITION_FAILED` and nothing changes. Without it the write is unconditional.',
  schema: { type: 'string' },
};
const preconditionFailed = () =>
  errorResponse('`If-Match` does not match the product as it is now (or it does not exist).', [
    'PRECONDITION_FAILED',
  ]);
const orderIdParameter = {
  name: 'orderId',
  in: 'path',
  required: true,
  schema: { type: 'string', minLength: 1, maxLength: 64 },
};

function paths(): Json {
  return {
    '/health': {
      get: {
        operationId: 'getHealth',
        tags: ['health'],
        summary: 'Liveness',
        description:
          'Answers once the service is up. Locally, `npm start` is ready when this answers: tables, DynamoDB streams and JetStream streams exist by then.',
        security: PUBLIC,
        'x-status': 'implemented',
        responses: {
          '200': {
            description: 'Up.',
            content: json({
              type: 'object',
              properties: { status: { const: 'ok' } },
              required: ['status'],
            }),
          },
          '500': responseRef('InternalError'),
        },
      },
    },
    '/products': {
      get: {
        operationId: 'listProducts',
        tags: ['products'],
        summary: 'List the catalogue',
        description:
          'Every product with its stock, in SKU order (byte order: `A-Z` before `a-z`), a page at a time. Pages continue with `cursor` = the previous `nextCursor`; there is no `nextCursor` on the last page. Each page continues after the last SKU of the one before, so paging never lists a product twice or skips one that existed throughout; a product created meanwhile is listed if its SKU sorts after the current page. The list comes from an index that trails a new product by a moment; the stock shown is read from the products themselves. Read one product with its `ETag` with `GET /products/{sku}`.',
        security: ADMIN,
        'x-status': 'implemented',
        parameters: [
          {
            name: 'limit',
            in: 'query',
            required: false,
            description: 'Products per page, 1-100.',
            schema: { type: 'integer', minimum: 1, maximum: 100, default: 50 },
          },
          {
            name: 'cursor',
            in: 'query',
            required: false,
            description: 'Opaque: the `nextCursor` of the previous page.',
            schema: { type: 'string', minLength: 1, maxLength: 1024 },
          },
        ],
        responses: {
          '200': { description: 'A page of products.', content: json(ref('ProductPage')) },
          '400': errorResponse(
            'The limit is invalid, an unknown query parameter, or a cursor this query did not return.',
            ['VALIDATION_FAILED', 'INVALID_CURSOR'],
          ),
          '401': responseRef('Unauthorized'),
          '403': responseRef('Forbidden'),
          '500': responseRef('InternalError'),
        },
      },
    },
    '/products/{sku}': {
      parameters: [skuParameter],
      put: {
        operationId: 'putProduct',
        tags: ['products'],
        summary: 'Create or replace a product',
        description:
          'Sets `available` as given. Read the product first and send its `ETag` as `If-Match`: then an edit made while reservations moved the stock is refused (`412`) instead of overwriting units that were sold or released since. To add or remove units without replacing the rest, use `POST /products/{sku}/stock-adjustments`.',
        security: ADMIN,
        'x-status': 'implemented',
        parameters: [ifMatchParameter],
        requestBody: { required: true, content: json(ref('PutProductRequest')) },
        responses: {
          '200': {
            description: 'The product as stored.',
            headers: etagHeader,
            content: json(ref('Product')),
          },
          '400': responseRef('BadRequest'),
          '401': responseRef('Unauthorized'),
          '403': responseRef('Forbidden'),
          '412': preconditionFailed(),
          '413': responseRef('PayloadTooLarge'),
          '415': responseRef('UnsupportedMediaType'),
          '500': responseRef('InternalError'),
        },
      },
      get: {
        operationId: 'getProduct',
        tags: ['products'],
        summary: 'Read a product and its stock',
        security: ADMIN,
        'x-status': 'implemented',
        responses: {
          '200': { description: 'The product.', headers: etagHeader, content: json(ref('Product')) },
          '400': responseRef('InvalidPath'),
          '401': responseRef('Unauthorized'),
          '403': responseRef('Forbidden'),
          '404': errorResponse('No such product.', ['PRODUCT_NOT_FOUND']),
          '500': responseRef('InternalError'),
        },
      },
    },
    '/products/{sku}/stock-adjustments': {
      parameters: [skuParameter],
      post: {
        operationId: 'adjustStock',
        tags: ['products'],
        summary: 'Add or remove units of a product',
        description:
          'Adds `delta` to `available` in one conditional write, whatever reservations do meanwhile: units held or sold stay as they are. Removing more than is available is `409 INSUFFICIENT_STOCK` and changes nothing. A crossing of `lowStockThreshold` emits `inventory.low_stock`, as a `PUT` does. With an `Idempotency-Key`, a retry of the same adjustment answers the product as it is now and adds nothing (the key is remembered for 24 hours); the same key with another body is `409 IDEMPOTENCY_KEY_REUSED`. Without one, every request is a new adjustment.',
        security: ADMIN,
        'x-status': 'implemented',
        parameters: [
          ifMatchParameter,
          {
            name: 'Idempotency-Key',
            in: 'header',
            required: false,
            description: 'Makes retries safe: 1-255 characters, e.g. a UUID.',
            schema: { type: 'string', minLength: 1, maxLength: 255 },
          },
        ],
        requestBody: { required: true, content: json(ref('AdjustStockRequest')) },
        responses: {
          '200': {
            description: 'The product after the adjustment.',
            headers: etagHeader,
            content: json(ref('Product')),
          },
          '400': responseRef('BadRequest'),
          '401': responseRef('Unauthorized'),
          '403': responseRef('Forbidden'),
          '404': errorResponse('No such product.', ['PRODUCT_NOT_FOUND']),
          '409': errorResponse(
            'Fewer units available than the adjustment removes, or the Idempotency-Key was used with another body.',
            ['INSUFFICIENT_STOCK', 'IDEMPOTENCY_KEY_REUSED'],
          ),
          '412': preconditionFailed(),
          '413': responseRef('PayloadTooLarge'),
          '415': responseRef('UnsupportedMediaType'),
          '500': responseRef('InternalError'),
        },
      },
    },
    '/orders': {
      post: {
        operationId: 'createOrder',
        tags: ['orders'],
        summary: 'Place an order and start its saga',
        description:
          'Records the order (status `PENDING`, sagaState `STARTED`) and starts its saga, which runs in the background: poll `GET /orders/{orderId}` or consume the events. ' +
          'With an `Idempotency-Key`, repeating the same request returns the same order (as it is now) and starts one saga only.',
        security: CUSTOMER,
        'x-status': 'implemented',
        parameters: [
          {
            name: 'Idempotency-Key',
            in: 'header',
            required: false,
            description:
              "Makes retries safe. A key belongs to the order's customer: the same customer's same key with the same body (compared after parsing: same fields, same line order) returns the first order; with another body it is `409 IDEMPOTENCY_KEY_REUSED`. Another customer's equal key is theirs alone (a second order). Use random keys (UUIDs). A key is remembered for at least 24 hours.",
            schema: { type: 'string', minLength: 1, maxLength: 255 },
          },
        ],
        requestBody: { required: true, content: json(ref('CreateOrderRequest')) },
        responses: {
          '202': {
            description: 'Accepted: the order as recorded; its saga runs in the background.',
            headers: {
              Location: { description: 'The order: `/orders/{orderId}`.', schema: { type: 'string' } },
            },
            content: json(ref('Order')),
          },
          '400': responseRef('BadRequest'),
          '401': responseRef('Unauthorized'),
          '403': errorResponse("The body's `customerId` is not the token's customer.", ['CUSTOMER_MISMATCH']),
          '409': errorResponse('The Idempotency-Key was used with another body.', ['IDEMPOTENCY_KEY_REUSED']),
          '413': responseRef('PayloadTooLarge'),
          '415': responseRef('UnsupportedMediaType'),
          '500': responseRef('InternalError'),
        },
      },
    },
    '/orders/{orderId}': {
      parameters: [orderIdParameter],
      get: {
        operationId: 'getOrder',
        tags: ['orders'],
        summary: 'Read an order',
        description:
          "A strongly consistent read of the order and its saga state. A customer sees only their own orders: another customer's is `404`, exactly as an unknown one. The back office sees every order.",
        security: CUSTOMER,
        'x-status': 'implemented',
        responses: {
          '200': { description: 'The order.', content: json(ref('Order')) },
          '400': responseRef('InvalidPath'),
          '401': responseRef('Unauthorized'),
          '404': errorResponse("No such order, or another customer's.", ['ORDER_NOT_FOUND']),
          '500': responseRef('InternalError'),
        },
      },
    },
    '/orders/{orderId}/cancel': {
      parameters: [orderIdParameter],
      post: {
        operationId: 'cancelOrder',
        tags: ['orders'],
        summary: 'Cancel an order',
        description:
          'The customer cancels an order whose payment has not succeeded yet; it takes effect within seconds, whatever the saga is doing. ' +
          'Before the PaymentIntent can be paid, the cancellation is recorded on the order and the saga refuses its next step. ' +
          'While the saga waits for the payment, the payments service cancels the PaymentIntent at Stripe first, and Stripe decides the race with a payment: ' +
          'canceled, the waiting step ends at once and the order is compensated (stock released) and ends `CANCELLED` with reason `CUSTOMER_CANCELLED`; ' +
          'paid first, the answer is `409 ORDER_NOT_CANCELLABLE` and the order completes. Exactly one wins, and each answer says which. ' +
          'The response shows the order as it is now, usually not yet cancelled. ' +
          'Asking again while the order is being compensated is harmless (`202`). Once the payment succeeded, or the order completed or was cancelled, the answer is `409 ORDER_NOT_CANCELLABLE`. ' +
          "Another customer's order is `404`, as an unknown one, and is left as it is.",
        security: CUSTOMER,
        'x-status': 'implemented',
        responses: {
          '202': {
            description: 'Cancellation accepted; the order as it is now.',
            content: json(ref('Order')),
          },
          '400': responseRef('InvalidPath'),
          '401': responseRef('Unauthorized'),
          '404': errorResponse("No such order, or another customer's.", ['ORDER_NOT_FOUND']),
          '409': errorResponse('The order can no longer be cancelled.', ['ORDER_NOT_CANCELLABLE']),
          '500': responseRef('InternalError'),
        },
      },
    },
    '/inventory/reservations': {
      get: {
        operationId: 'listReservations',
        tags: ['inventory'],
        summary: 'List stock reservations by order or by SKU',
        description:
          'Exactly one of `orderId` and `sku`, else `400`. One item per reserved line. By `orderId`: the lines of that order, by SKU, read from the reservation itself (always current). By `sku`: the lines of that SKU, newest first, from an index the inventory service keeps from its table stream, so a change shows there within a moment. An order that never reserved (or was refused stock) has no lines: the answer is `200` with no items, not `404`. Pages continue with `cursor` = the previous `nextCursor`; there is no `nextCursor` on the last page.',
        security: ADMIN,
        'x-status': 'implemented',
        parameters: [
          {
            name: 'orderId',
            in: 'query',
            required: false,
            schema: { type: 'string', minLength: 1, maxLength: 64 },
          },
          { name: 'sku', in: 'query', required: false, schema: ref('Sku') },
          {
            name: 'limit',
            in: 'query',
            required: false,
            description: 'Items per page, 1-100.',
            schema: { type: 'integer', minimum: 1, maximum: 100, default: 50 },
          },
          {
            name: 'cursor',
            in: 'query',
            required: false,
            description:
              "Opaque: the `nextCursor` of the previous page of the same filter. The contract names only `nextCursor`; this parameter name is this document's choice.",
            schema: { type: 'string', minLength: 1, maxLength: 1024 },
          },
        ],
        responses: {
          '200': { description: 'A page of reservation lines.', content: json(ref('ReservationPage')) },
          '401': responseRef('Unauthorized'),
          '403': responseRef('Forbidden'),
          '400': errorResponse(
            'Neither or both filters given, a filter or the limit is invalid, an unknown query parameter, or a cursor from another query.',
            ['VALIDATION_FAILED', 'INVALID_CURSOR'],
          ),
          '500': responseRef('InternalError'),
        },
      },
    },
    '/payments/webhook': {
      post: {
        operationId: 'stripeWebhook',
        tags: ['payments'],
        summary: 'Stripe webhook endpoint',
        description:
          'Verifies `Stripe-Signature` over the raw body (signatures dated more than 300 s before or after now are refused), then applies the event at most once (keyed by `event.id`). ' +
          'Handled: `payment_intent.succeeded`, `payment_intent.payment_failed`, `payment_intent.canceled`, matched by PaymentIntent id, then `metadata.orderId` (which adopts the intent only for a payment that has none recorded yet). ' +
          'Other types, unknown PaymentIntents, repeats and late or contradictory events are answered `200` and change nothing, except that a success arriving after the payment was closed (failed or cancelled), a success for another PaymentIntent of the order, and a success for another amount or currency are refunded once. ' +
          'A `500` makes Stripe retry. The `Content-Type` is not checked; the body must be the bytes Stripe sent.',
        security: PUBLIC,
        'x-status': 'implemented',
        parameters: [
          {
            name: 'Stripe-Signature',
            in: 'header',
            required: true,
            description:
              '`t=<unix time>,v1=<HMAC-SHA256 hex>`, signed with the endpoint secret (`STRIPE_WEBHOOK_SECRET` locally, the webhook signing secret, `StripeWebhookSecretArn`, on AWS). A header that is missing, not `t=…,v1=…`, or dated more than 300 s from now is refused before any secret is read. While a secret is rolled the header carries one `v1` per secret; it verifies when any one matches a configured secret (several may be configured, comma-separated).',
            schema: { type: 'string' },
          },
        ],
        requestBody: {
          required: true,
          content: json({
            type: 'object',
            description: 'A Stripe Event object.',
            properties: {
              id: { type: 'string' },
              type: { type: 'string' },
              data: { type: 'object', properties: { object: { type: 'object' } }, required: ['object'] },
            },
            required: ['id', 'type', 'data'],
          }),
        },
        responses: {
          '200': {
            description: 'Received (applied, or nothing to apply).',
            content: json({
              type: 'object',
              properties: { received: { const: true } },
              required: ['received'],
            }),
          },
          '400': errorResponse(
            'Missing or bad signature (or a timestamp more than 300 s away), or a validly signed body that is not JSON or not a Stripe event.',
            ['MISSING_SIGNATURE', 'INVALID_SIGNATURE', 'INVALID_JSON', 'VALIDATION_FAILED'],
          ),
          '413': responseRef('PayloadTooLarge'),
          '500': responseRef('InternalError'),
        },
      },
    },
  };
}

const DESCRIPTION = [
  "The order saga's HTTP API (API Gateway HTTP API, payload 2.0; locally served by `npm start`).",
  '',
  "All bodies are JSON. Money is an integer in the currency's minor unit. Every route carries `x-status`: `implemented`, or `planned` for a contract route a build lacks (none in this one).",
  '',
  '## Errors',
  'Every error the handlers answer is `{"error":{"code","message","details"}}` (schema `Error`), with a 4xx status for every client mistake:',
  '',
  '| code | status | when |',
  '|---|---|---|',
  ...Object.entries(ERROR_CODES).map(
    ([code, { status, description }]) => `| \`${code}\` | ${status} | ${description} |`,
  ),
  '',
  `Limits: bodies over ${MAX_BODY_BYTES} bytes (64 KiB) are \`413\`; routes that take a JSON body answer \`415\` to any \`Content-Type\` other than \`application/json\` or \`*/*+json\`.`,
  "Checks run in this order: size, content type, JSON, body fields, path, query, then the handler's own checks.",
  '',
  'Responses produced by API Gateway itself, before a handler runs, have its own body `{"message":"..."}`: `404 Not Found` for an unknown route or method,',
  "`401`/`403` from the authorizer, `413` above API Gateway's 10 MB limit, `429` when throttled, and a 5xx when a function fails outside the error handling (for example at start-up) or times out.",
  'The local runtime mirrors the `404`, the 10 MB `413` and the `500`.',
  '',
  '## Authorization',
  'Deployed with the context `jwtIssuer` and `jwtAudience`, customer routes need a JWT from that issuer (scheme `jwt`) and product and reservation routes a JWT with the admin scope (context `adminScope`, default `orders/admin`).',
  'Deployed without them, the same routes need IAM authorization instead (scheme `sigv4`). The webhook and health are public.',
  'A missing or bad token is `401`, a token without the required scope `403`, both with API Gateway\'s body `{"message":"Unauthorized"}` / `{"message":"Forbidden"}`.',
  '',
  '## Ownership',
  "A customer (a token without the admin scope) places orders for the token's `sub` only (a body `customerId` that differs is `403 CUSTOMER_MISMATCH`), and sees and cancels only their own orders: another customer's order is `404`, exactly as an unknown one. `Idempotency-Key`s are scoped to the customer.",
  "The back office (an IAM-signed request, or a token with the admin scope) sees and cancels every order, and places orders for the customer it names in `customerId`. A shop admin's token is never shown a client secret.",
  '',
  'The local runtime enforces none of this by default (`LOCAL_AUTH=none`: every caller is the back office, as with SAM); `LOCAL_AUTH=jwt` enforces the JWT authorizer and ownership as deployed.',
].join('\n');

/** Builds the OpenAPI 3.1 document of the HTTP API. */
export function buildOpenApiDocument() {
  return {
    openapi: '3.1.0',
    info: {
      title: 'Order saga HTTP API',
      version: packageJson.version,
      description: DESCRIPTION,
      license: { name: packageJson.license, identifier: packageJson.license },
    },
    servers: [
      {
        url: 'http://127.0.0.1:{port}',
        description: 'The local runtime (`npm start`); it binds 127.0.0.1 only.',
        variables: { port: { default: '3000', description: '`PORT`' } },
      },
      {
        url: 'https://{apiId}.execute-api.{region}.amazonaws.com',
        description: 'A deployed stack: the stack output `Url`.',
        variables: { apiId: { default: 'abcdefghij' }, region: { default: 'us-east-1' } },
      },
    ],
    tags: [
      { name: 'health' },
      { name: 'products', description: 'The catalogue and its stock (admin).' },
      { name: 'orders', description: 'Orders and their saga (customers).' },
      { name: 'inventory', description: 'Stock reservations (admin).' },
      { name: 'payments', description: 'Stripe webhooks.' },
    ],
    paths: paths(),
    components: {
      securitySchemes: {
        jwt: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description:
            'API Gateway JWT authorizer (stack context `jwtIssuer`, `jwtAudience`). `sub` is the customer; product and reservation routes also require the admin scope (context `adminScope`, default `orders/admin`, in the space-separated `scope` claim). Locally with `LOCAL_AUTH=jwt`: HS256 tokens signed with `LOCAL_JWT_SECRET`, issuer `order-saga-local`, audience `order-saga` (`npm run token -- --sub c-1 [--admin]`).',
        },
        sigv4: {
          type: 'apiKey',
          in: 'header',
          name: 'Authorization',
          description:
            'AWS Signature Version 4 (API Gateway IAM authorization): what the stack uses instead of JWT when it is synthesized without `jwtIssuer`/`jwtAudience`. Not enforced locally.',
          'x-amazon-apigateway-authtype': 'awsSigv4',
        },
      },
      responses: { ...responses, ...gatewayResponses },
      schemas: {
        GatewayMessage: {
          type: 'object',
          description: "API Gateway's own answer, before any handler runs.",
          properties: { message: { type: 'string' } },
          required: ['message'],
        },
        Error: {
          type: 'object',
          description: 'The body of every error a handler answers.',
          properties: {
            error: {
              type: 'object',
              properties: {
                code: ref('ErrorCode'),
                message: { type: 'string', description: 'A human sentence; do not parse it.' },
                details: { type: 'array', items: ref('ErrorDetail') },
              },
              required: ['code', 'message', 'details'],
              additionalProperties: false,
            },
          },
          required: ['error'],
          additionalProperties: false,
        },
        ErrorDetail: {
          type: 'object',
          description:
            'One problem: `path` is the dot-separated location (`items.0.quantity`, a path or query parameter name, `Idempotency-Key`); it is empty for an unknown body field, which the message names.',
          properties: { path: { type: 'string' }, message: { type: 'string' } },
          required: ['path', 'message'],
        },
        ErrorCode: {
          type: 'string',
          description: 'SCREAMING_SNAKE error code.',
          oneOf: Object.entries(ERROR_CODES).map(([code, { status, description }]) => ({
            const: code,
            description: `${status}: ${description}`,
          })),
        },
        ...componentSchemas(),
      },
    },
  };
}
