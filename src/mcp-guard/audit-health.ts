// Whether the guard's records are reaching the audit log. Every writer in the guard (the call pipeline's group
// commit, the approval store, the catalog's trust records) writes through this wrapper, so one failed write anywhere
// counts in perimeter_mcp_guard_audit_failures_total and turns /healthz unhealthy until a later write succeeds — as
// the egress proxy does. A refusal whose record is lost must not go unseen.
import type { AuditAppender } from "../approvals/index.ts";
import type { AuditLog } from "../audit-log/index.ts";

export type GuardAudit = AuditAppender & Partial<Pick<AuditLog, "prepare" | "appendPrepared">>;

export interface AuditHealth {
  readonly audit: GuardAudit;
  /** False from a failed write until a later one succeeds. */
  healthy(): boolean;
}

export function trackAuditHealth(audit: GuardAudit, onFailure: (error: unknown) => void): AuditHealth {
  let failing = false;
  const watched = <A extends unknown[], R>(write: (...parameters: A) => R) =>
    (...parameters: A): R => {
      try {
        const result = write(...parameters);
        failing = false;
        return result;
      } catch (error) {
        failing = true;
        onFailure(error);
        throw error;
      }
    };
  const { prepare, appendPrepared } = audit;
  const wrapped: GuardAudit = { append: watched((event: Parameters<GuardAudit["append"]>[0]) => audit.append(event)) };
  // Preparing validates an event without writing: the guard builds only recordable events, so a refusal here is a
  // record lost like any other.
  if (prepare !== undefined) wrapped.prepare = (event) => {
    try {
      return prepare.call(audit, event);
    } catch (error) {
      failing = true;
      onFailure(error);
      throw error;
    }
  };
  if (appendPrepared !== undefined) wrapped.appendPrepared = watched((events: Parameters<NonNullable<GuardAudit["appendPrepared"]>>[0]) => appendPrepared.call(audit, events));
  return { audit: wrapped, healthy: () => !failing };
}
