// What other capabilities may use from render/.
export {
  sandboxJobTemplate,
  sandboxTaskLabels,
  SANDBOX_JOB_TEMPLATE_KEY,
  SANDBOX_JOB_TEMPLATE_PATH,
  SANDBOX_TASK_CONTAINER,
  SANDBOX_TASK_SERVICE_ACCOUNT,
  SANDBOX_TTL_SECONDS_AFTER_FINISHED,
} from "./kubernetes/sandbox-job.ts";
