import type {
  APIGatewayProxyEventV2,
  APIGatewayProxyResultV2,
  APIGatewayProxyStructuredResultV2,
} from 'aws-lambda';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { JwtAuthorizer, JwtAuthorizerContext } from './auth.ts';
import { BodyTooLargeError, listen, readBody } from './http-server.ts';
import type { LambdaHost } from './lambda-host.ts';
import type { RouteSpec } from './template.ts';

/*
 * An API Gateway HTTP API stand-in: matches the stack's routes, turns each request into a
 * payload-2.0 event and calls the route's handler in-process.
 *
 * Mirrors: route keys with {param} segments, lower-cased headers (repeats joined with commas),
 * cookies, raw and parsed query strings, base64 bodies for non-text content types, the
 * `{"message":"Not Found"}` 404 and the 10 MB payload limit, 500 `{"message":"Internal Server
 * Error"}` when a handler throws, the 2.0 response inference for non-structured results.
 * With a JWT authorizer (LOCAL_AUTH=jwt), the routes the stack protects with one: a missing or bad
 * bearer token is `401 {"message":"Unauthorized"}`, a token without a scope the route requires is
 * `403 {"message":"Forbidden"}`, and a token that passes reaches the handler as
 * `requestContext.authorizer.jwt` {claims, scopes}, as API Gateway hands it over.
 * Beside the stack's routes it answers local-only GETs it is given (`staticRoutes`: the API
 * reference, `/openapi.json` and `/docs`), which API Gateway does not have.
 * Not mirrored: IAM (SigV4) authorization, and any authorizer without LOCAL_AUTH=jwt (as with SAM);
 * custom domains, stages other than $default, throttling, CORS.
 */

const MAX_PAYLOAD_BYTES = 10 * 1024 * 1024;
const TEXT_TYPES = /^(text\/|application\/(json|.*\+json|xml|x-www-form-urlencoded|javascript))/i;

interface CompiledRoute {
  route: RouteSpec;
  pattern: RegExp;
  names: string[];
}

function compile(route: RouteSpec): CompiledRoute {
  const names: string[] = [];
  const source = route.path
    .split('/')
    .map((segment) => {
      const match = /^\{(.+?)(\+)?\}$/.exec(segment);
      if (!match) return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      names.push(match[1]!);
      return match[2] ? '(.+)' : '([^/]+)';
    })
    .join('/');
  return { route, pattern: new RegExp(`^${source}$`), names };
}

function toEvent(
  request: IncomingMessage,
  url: URL,
  compiled: CompiledRoute,
  match: RegExpExecArray,
  body: Buffer,
  authorizer: JwtAuthorizerContext | undefined,
): APIGatewayProxyEventV2 {
  const headers: Record<string, string> = {};
  for (let i = 0; i < request.rawHeaders.length; i += 2) {
    const name = request.rawHeaders[i]!.toLowerCase();
    const value = request.rawHeaders[i + 1]!;
    if (name === 'cookie') continue;
    headers[name] = headers[name] === undefined ? value : `${headers[name]},${value}`;
  }
  const cookies = request.headers.cookie
    ?.split(';')
    .map((cookie) => cookie.trim())
    .filter(Boolean);
  const query: Record<string, string> = {};
  for (const [name, value] of url.searchParams)
    query[name] = query[name] === undefined ? value : `${query[name]},${value}`;
  const pathParameters = Object.fromEntries(
    compiled.names.map((name, index) => [name, decodeURIComponent(match[index + 1]!)]),
  );
  const isText = TEXT_TYPES.test(headers['content-type'] ?? 'application/json');
  const now = new Date();
  const routeKey = `${compiled.route.method} ${compiled.route.path}`;
  return {
    version: '2.0',
    routeKey,
    rawPath: url.pathname,
    rawQueryString: url.search.replace(/^\?/, ''),
    ...(cookies?.length ? { cookies } : {}),
    headers,
    ...(Object.keys(query).length ? { queryStringParameters: query } : {}),
    ...(compiled.names.length ? { pathParameters } : {}),
    requestContext: {
      accountId: '000000000000',
      apiId: 'local',
      domainName: url.host,
      domainPrefix: url.hostname,
      http: {
        method: request.method ?? 'GET',
        path: url.pathname,
        protocol: `HTTP/${request.httpVersion}`,
        sourceIp: request.socket.remoteAddress ?? '127.0.0.1',
        userAgent: headers['user-agent'] ?? '',
      },
      requestId: randomUUID(),
      ...(authorizer ? { authorizer } : {}),
      routeKey,
      stage: '$default',
      time: now.toUTCString(),
      timeEpoch: now.getTime(),
    },
    ...(body.length ? { body: isText ? body.toString('utf8') : body.toString('base64') } : {}),
    isBase64Encoded: body.length > 0 && !isText,
  };
}

function send(response: ServerResponse, result: APIGatewayProxyResultV2) {
  // Payload 2.0: anything but a structured result with statusCode is JSON with status 200.
  const structured: APIGatewayProxyStructuredResultV2 =
    typeof result === 'object' && result !== null && 'statusCode' in result
      ? result
      : { statusCode: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify(result) };
  const body =
    structured.body === undefined
      ? ''
      : structured.isBase64Encoded
        ? Buffer.from(structured.body, 'base64')
        : structured.body;
  response.writeHead(structured.statusCode ?? 200, {
    ...(structured.headers as Record<string, string> | undefined),
    ...(structured.cookies?.length ? { 'set-cookie': structured.cookies } : {}),
  });
  response.end(body);
}

function sendJson(
  response: ServerResponse,
  statusCode: number,
  body: unknown,
  headers: Record<string, string> = {},
) {
  response.writeHead(statusCode, { 'content-type': 'application/json', ...headers });
  response.end(JSON.stringify(body));
}

/** A GET the local runtime answers itself, beside the stack's routes (the API reference). */
export interface StaticRoute {
  path: string;
  respond: () => Promise<{ contentType: string; body: string | Buffer }>;
}

export interface HttpGateway {
  readonly url: string;
  close(): Promise<void>;
}

export async function startHttpGateway(options: {
  routes: RouteSpec[];
  lambdas: LambdaHost;
  port: number;
  /** Enforce the routes' JWT authorizer with this (LOCAL_AUTH=jwt); without it no route is authorized. */
  jwtAuthorizer?: JwtAuthorizer;
  /** Local-only GET routes, matched after the stack's own (which they must not shadow). */
  staticRoutes?: StaticRoute[];
  onError?: (error: unknown) => void;
}): Promise<HttpGateway> {
  const compiled = options.routes.map(compile);
  const server = await listen(
    (request, response) => {
      void (async () => {
        const url = new URL(request.url ?? '/', `http://${request.headers.host ?? '127.0.0.1'}`);
        let found: { compiled: CompiledRoute; match: RegExpExecArray } | undefined;
        for (const candidate of compiled) {
          if (candidate.route.method !== request.method && candidate.route.method !== 'ANY') continue;
          const match = candidate.pattern.exec(url.pathname);
          if (match) {
            found = { compiled: candidate, match };
            break;
          }
        }
        const local = found ? undefined : options.staticRoutes?.find((route) => route.path === url.pathname);
        if (local && request.method === 'GET') {
          try {
            const { contentType, body } = await local.respond();
            response.writeHead(200, { 'content-type': contentType });
            return response.end(body);
          } catch (error) {
            options.onError?.(error);
            return sendJson(response, 500, { message: 'Internal Server Error' });
          }
        }
        if (!found) return sendJson(response, 404, { message: 'Not Found' });
        try {
          // Inside the try: a client that hangs up mid-body must not take the runtime down.
          const body = await readBody(request, MAX_PAYLOAD_BYTES).catch((error: unknown) => {
            if (error instanceof BodyTooLargeError) return undefined;
            throw error;
          });
          if (!body) return sendJson(response, 413, { message: 'Request Entity Too Large' });
          const { route } = found.compiled;
          let authorizer: JwtAuthorizerContext | undefined;
          if (options.jwtAuthorizer && route.authorizationType === 'JWT') {
            const decision = await options.jwtAuthorizer.authorize(
              request.headers.authorization,
              route.authorizationScopes,
            );
            if (!decision.allowed)
              return sendJson(response, decision.statusCode, decision.body, decision.headers);
            authorizer = decision.authorizer;
          }
          const result = await options.lambdas.invoke(
            route.functionId,
            toEvent(request, url, found.compiled, found.match, body, authorizer),
          );
          send(response, result as APIGatewayProxyResultV2);
        } catch (error) {
          options.onError?.(error);
          if (!response.headersSent && !response.destroyed)
            sendJson(response, 500, { message: 'Internal Server Error' });
        }
      })();
    },
    { port: options.port },
  );
  return { url: server.url, close: server.close };
}
