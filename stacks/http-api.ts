import { CfnOutput } from 'aws-cdk-lib';
import type { HttpMethod } from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpApi, type IHttpRouteAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer, HttpJwtAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';

export type Audience = 'public' | 'customer' | 'admin';

export interface ApiRoute {
  method: HttpMethod;
  path: string;
  handler: IFunction;
  audience: Audience;
}

export interface HttpApiProps {
  routes: ApiRoute[];
  /** With a JWT issuer, customers and admins sign in with tokens; without, routes require IAM. */
  jwt?: { issuer: string; audience: string[]; adminScope: string };
}

/** The public HTTP API (payload 2.0). The webhook and health are open; everything else is authorized. */
export class OrderSagaHttpApi extends Construct {
  readonly api: HttpApi;

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
    }
    new CfnOutput(this, 'Url', { value: this.api.apiEndpoint, description: 'API base URL' });
  }
}
