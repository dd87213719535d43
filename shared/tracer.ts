import { Tracer } from '@aws-lambda-powertools/tracer';

/**
 * The process's Powertools Tracer: X-Ray segments for each invocation (shared/lambda-edge.ts) and
 * for the AWS SDK calls (shared/aws.ts) and outgoing HTTPS (Stripe). It is on only inside Lambda
 * (`AWS_EXECUTION_ENV` is set) with active tracing on the function; `POWERTOOLS_TRACE_ENABLED=false`
 * turns it off. Off, every capture is a pass-through: the local runtime sets that variable, so it
 * neither patches clients nor looks for an X-Ray daemon, whatever the shell it starts from.
 */
export const tracer = new Tracer();
