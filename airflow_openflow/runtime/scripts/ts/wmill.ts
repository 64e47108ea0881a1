// airflow-openflow's `wmill` client for TypeScript steps: Windmill's client API (windmill-client,
// npm:windmill-client@..., https://deno.land/x/windmill@.../mod.ts all resolve here), answered by
// the Airflow task that runs the script. Each call goes to the task process over a loopback HTTP
// endpoint (runtime/wmill_bridge.py) and is answered by the same Python SDK a python3 step uses:
// the same Airflow Variables, Connections, XCom flow user state and trigger state.
// Functions Airflow cannot answer throw `not supported on Airflow: wmill.<name>`.

// deno-lint-ignore-file no-explicit-any

export type Sql = string;
export type Email = string;
export type Base64 = string;
// deno-lint-ignore no-unused-vars
export type Resource<S extends string> = any;
export type S3Object = { s3: string; storage?: string } | string;
export type DenoS3LightClientSettings = Record<string, any>;

/** Where the flow's ./shared folder is (flows with same_worker): relative to the step's folder. */
export const SHARED_FOLDER = "./shared";

const SUPPORTED = [
  "getWorkspace",
  "getRootJobId",
  "getStatePath",
  "getVariable",
  "setVariable",
  "getResource",
  "setResource",
  "getState",
  "setState",
  "getInternalState",
  "setInternalState",
  "getFlowUserState",
  "setFlowUserState",
  "getResumeUrls",
  "resolveDefaultResource",
  "databaseUrlFromResource",
];

function env(name: string): string | undefined {
  const g = globalThis as any;
  if (g.Deno !== undefined) return g.Deno.env.get(name);
  return g.process?.env?.[name];
}

class WmillNotSupported extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WmillNotSupported";
  }
}

function notSupported(name: string): WmillNotSupported {
  return new WmillNotSupported(
    `not supported on Airflow: wmill.${name} (airflow-openflow supports: ${SUPPORTED.join(", ")})`,
  );
}

async function call(name: string, args: Record<string, unknown> = {}): Promise<any> {
  const url = env("OPENFLOW_WMILL_URL");
  if (!url) {
    throw new WmillNotSupported(
      `wmill.${name}() is only available while an OpenFlow step runs in an Airflow task`,
    );
  }
  const response = await fetch(url, {
    method: "POST",
    headers: {
      "Authorization": `Bearer ${env("OPENFLOW_WMILL_TOKEN")}`,
      "Content-Type": "application/json",
    },
    body: JSON.stringify({ call: name, args }, (_key, value) =>
      typeof value === "bigint" ? value.toString() : value),
  });
  const body = await response.json();
  if (body.error) {
    const error = new Error(body.error.message);
    error.name = body.error.name;
    throw error;
  }
  return body.result;
}

/** The workspace (the Airflow deployment's [openflow] workspace). */
export function getWorkspace(): string {
  return env("WM_WORKSPACE") ?? "no_workspace";
}

/** The root flow's job: the DAG run id. */
export async function getRootJobId(_jobId?: string): Promise<string> {
  return await call("get_root_job_id");
}

/** Windmill's state path of this step: `<flow path>/<step id>_<trigger>`. */
export function getStatePath(): string {
  const path = env("WM_STATE_PATH_NEW") ?? env("WM_STATE_PATH");
  if (path === undefined) throw Error("State path not set");
  return path;
}

/** An Airflow Variable (the documented path rule), as a string. */
export async function getVariable(path: string): Promise<string> {
  return await call("get_variable", { path });
}

export async function setVariable(
  path: string,
  value: string,
  isSecretIfNotExist?: boolean,
  descriptionIfNotExist?: string,
): Promise<void> {
  await call("set_variable", {
    path,
    value,
    is_secret: isSecretIfNotExist ?? false,
    description: descriptionIfNotExist ?? "",
  });
}

/** An Airflow Connection (or a JSON Variable) as a Windmill resource object. */
export async function getResource(path?: string, undefinedIfEmpty?: boolean): Promise<any> {
  const value = await call("get_resource", {
    path: path ?? getStatePath(),
    none_if_undefined: undefinedIfEmpty ?? false,
  });
  return undefinedIfEmpty && value === null ? undefined : value;
}

export async function setResource(
  value: any,
  path?: string,
  initializeToTypeIfNotExist?: string,
): Promise<void> {
  await call("set_resource", {
    path: path ?? getStatePath(),
    value: value ?? null,
    resource_type: initializeToTypeIfNotExist ?? "any",
  });
}

/** The state this step stored in an earlier run of the flow (undefined when there is none). */
export async function getState(path?: string): Promise<any> {
  return (await call("get_state", { path: path ?? null })) ?? undefined;
}

export async function setState(state: any, path?: string): Promise<void> {
  await call("set_state", { value: state ?? null, path: path ?? null });
}

/** @deprecated use getState instead */
export async function getInternalState(): Promise<any> {
  return await getState();
}

/** @deprecated use setState instead */
export async function setInternalState(state: any): Promise<void> {
  await setState(state);
}

/** The value last stored under `key` in this flow run (by this step or one before it), or null. */
export async function getFlowUserState(key: string, errorIfNotPossible?: boolean): Promise<any> {
  try {
    return await call("get_flow_user_state", { key });
  } catch (e: any) {
    if (errorIfNotPossible) throw Error(`Error getting flow user state at ${key}: ${e.message}`);
    console.error(`Error getting flow user state at ${key}: ${e.message}`);
    return undefined;
  }
}

export async function setFlowUserState(
  key: string,
  value: any,
  errorIfNotPossible?: boolean,
): Promise<void> {
  try {
    await call("set_flow_user_state", { key, value: value ?? null });
  } catch (e: any) {
    if (errorIfNotPossible) throw Error(`Error setting flow user state at ${key}: ${e.message}`);
    console.error(`Error setting flow user state at ${key}: ${e.message}`);
  }
}

/** The approval page and the signed resume / cancel links of this step's suspend. */
export async function getResumeUrls(
  approver?: string,
): Promise<{ approvalPage: string; resume: string; cancel: string }> {
  return await call("get_resume_urls", { approver: approver ?? null });
}

/** @deprecated use getResumeUrls instead */
export function getResumeEndpoints(
  approver?: string,
): Promise<{ approvalPage: string; resume: string; cancel: string }> {
  return getResumeUrls(approver);
}

export async function resolveDefaultResource(obj: any): Promise<any> {
  if (typeof obj === "string" && obj.startsWith("$res:")) {
    return await getResource(obj.substring(5), true);
  }
  return obj;
}

export async function databaseUrlFromResource(path: string): Promise<string> {
  const r = await getResource(path);
  return `postgresql://${r.user}:${r.password}@${r.host}:${r.port}/${r.dbname}?sslmode=${r.sslmode}`;
}

/** Windmill's client reads its token and base URL here; the Airflow task needs neither. */
export function setClient(_token?: string, _baseUrl?: string): void {}

export function base64ToUint8Array(data: string): Uint8Array {
  return Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
}

export function uint8ArrayToBase64(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text);
}

function stub(name: string): (...args: any[]) => never {
  return () => {
    throw notSupported(name);
  };
}

function service(name: string): any {
  return new Proxy({}, {
    get: (_target, member) => (typeof member === "string" ? stub(`${name}.${member}`) : undefined),
  });
}

// Windmill's client functions that have no meaning on Airflow (yet): each throws when called.
export const runScript = stub("runScript");
export const runScriptAsync = stub("runScriptAsync");
export const runScriptByPath = stub("runScriptByPath");
export const runScriptByHash = stub("runScriptByHash");
export const runScriptByPathAsync = stub("runScriptByPathAsync");
export const runScriptByHashAsync = stub("runScriptByHashAsync");
export const runFlow = stub("runFlow");
export const runFlowAsync = stub("runFlowAsync");
export const waitJob = stub("waitJob");
export const getResult = stub("getResult");
export const getResultMaybe = stub("getResultMaybe");
export const task = stub("task");
export const workflow = stub("workflow");
export const step = stub("step");
export const sleep = stub("sleep");
export const waitForApproval = stub("waitForApproval");
export const parallel = stub("parallel");
export const getIdToken = stub("getIdToken");
export const usernameToEmail = stub("usernameToEmail");
export const loadS3File = stub("loadS3File");
export const loadS3FileStream = stub("loadS3FileStream");
export const writeS3File = stub("writeS3File");
export const denoS3LightClientSettings = stub("denoS3LightClientSettings");
export const signS3Objects = stub("signS3Objects");
export const signS3Object = stub("signS3Object");
export const getPresignedS3PublicUrl = stub("getPresignedS3PublicUrl");
export const getPresignedS3PublicUrls = stub("getPresignedS3PublicUrls");
export const parseS3Object = stub("parseS3Object");
export const setProgress = stub("setProgress");
export const getProgress = stub("getProgress");
export const requestInteractiveSlackApproval = stub("requestInteractiveSlackApproval");
export const requestInteractiveTeamsApproval = stub("requestInteractiveTeamsApproval");
export const streamResult = stub("streamResult");
export const AdminService = service("AdminService");
export const AuditService = service("AuditService");
export const FlowService = service("FlowService");
export const GranularAclService = service("GranularAclService");
export const GroupService = service("GroupService");
export const HelpersService = service("HelpersService");
export const JobService = service("JobService");
export const OidcService = service("OidcService");
export const ResourceService = service("ResourceService");
export const ScheduleService = service("ScheduleService");
export const ScriptService = service("ScriptService");
export const SettingsService = service("SettingsService");
export const UserService = service("UserService");
export const VariableService = service("VariableService");
export const WorkspaceService = service("WorkspaceService");
