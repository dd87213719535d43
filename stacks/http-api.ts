import { CfnOutput, Validations } from 'aws-cdk-lib';
import type { HttpMethod, CfnStage } from 'aws-cdk-lib/aws-apigatewayv2';
import { CfnRoute, HttpApi, type IHttpRouteAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer, HttpJwtAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { stageOf } from './stage.ts';

/** Why a route is open: each is authenticated another way, or tells nothing. */
const PUBLIC_ROUTE_REASONS: Record<string, string> = {
  '/health':
    'The health check answers {"status":"ok"} and nothing else; load balancers and uptime checks call it without credentials',
  '/payments/webhook':
    'Stripe cannot present AWS or JWT credentials: every delivery is authenticated by its Stripe-Signature (HMAC over the raw body) before anything is read or changed, and the route is throttled',
};

export type Audience = 'public' | 'customer' | 'admin';

/** Requests per second in the steady state, and the burst above it, before API Gateway answers 429. */
export interface Throttle {
  rateLimit: number;
  burstLimit: number;
}

export interface ApiRoute {
  method: HttpMethod;
  path: string;
  handler: IFunction;
  audience: Audience;
  /** A tighter limit than the API's own, for a route anyone may call (the webhook). */
  throttle?: Throttle;
}

export interface HttpApiProps {
  routes: ApiRoute[];
  /** The limit on every route: a flood is refused at the edge, before any function runs. */
  throttle: Throttle;
  /** With a JWT issuer, customers and admins sign in with tokens; without, routes require IAM. */
  jwt?: { issuer: string; audience: string[]; adminScope: string };
}

/** The public HTTP API (payload 2.0). The webhook and health are open; everything else is authorized. */
export class OrderSagaHttpApi extends Construct {
  readonly api: HttpApi;
  readonly accessLogs: LogGroup;

  constructor(scope: Construct, id: string, props: HttpApiProps) {
    super(scope, id);
    this.api = new HttpApi(this, 'Api', { description: 'Order saga public API' });
    const authorizer: IHttpRouteAuthorizer = props.jwt
      ? new HttpJwtAuthorizer('Jwt', props.jwt.issuer, { jwtAudience: props.jwt.audience })
      : new HttpIamAuthorizer();

    const integrations = new Map<IFunction, HttpLambdaIntegration>();
    for (const route of props.routes) {
      let integration = integrations.get(route.handler);
      if (!integration) {
        integration = new HttpLambdaIntegration(
          `Integration${route.handler.node.addr.slice(0, 8)}`,
          route.handler,
        );
        integrations.set(route.handler, integration);
      }
      this.api.addRoutes({
        path: route.path,
        methods: [route.method],
        integration,
        ...(route.audience === 'public' ? {} : { authorizer }),
        ...(route.audience === 'admin' && props.jwt ? { authorizationScopes: [props.jwt.adminScope] } : {}),
      });
      if (route.audience === 'public') {
        for (const child of this.api.node.findAll())
          if (child instanceof CfnRoute && child.routeKey === `${route.method} ${route.path}`)
            Validations.of(child).acknowledge({
              id: 'AwsSolutions-APIG4',
              reason: PUBLIC_ROUTE_REASONS[route.path] ?? 'A public route',
            });
      }
    }

    // The default stage: throttled per route, every request in the access log.
    const stage = this.api.defaultStage!.node.defaultChild as CfnStage;
    const limits = (throttle: Throttle) => ({
      throttlingRateLimit: throttle.rateLimit,
      throttlingBurstLimit: throttle.burstLimit,
    });
    stage.defaultRouteSettings = limits(props.throttle);
    // RouteSettings is untyped JSON in CloudFormation's schema: CDK passes it as written.
    stage.routeSettings = Object.fromEntries(
      props.routes
        .filter((route) => route.throttle)
        .map((route) => [
          `${route.method} ${route.path}`,
          {
            ThrottlingRateLimit: route.throttle!.rateLimit,
            ThrottlingBurstLimit: route.throttle!.burstLimit,
          },
        ]),
    );
    const stageOfStack = stageOf(this);
    this.accessLogs = new LogGroup(this, 'AccessLogs', {
      retention: stageOfStack.logRetention,
      removalPolicy: stageOfStack.removalPolicy,
    });
    stage.accessLogSettings = {
      destinationArn: this.accessLogs.logGroupArn,
      format: JSON.stringify({
        requestId: '$context.requestId',
        time: '$context.requestTime',
        routeKey: '$context.routeKey',
        status: '$context.status',
        latencyMs: '$context.responseLatency',
        integrationLatencyMs: '$context.integrationLatency',
        integrationError: '$context.integrationErrorMessage',
        sourceIp: '$context.identity.sourceIp',
        userAgent: '$context.identity.userAgent',
        authorizerError: '$context.authorizer.error',
      }),
    };

    new CfnOutput(this, 'Url', { value: this.api.apiEndpoint, description: 'API base URL' });
  }
}
