// The HTTP side of collab: campaigns, lifecycle, history, audiences, and the
// development login.

export class HTTPError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

export class API {
  constructor(token) {
    this.token = token;
  }

  async call(method, path, body) {
    const headers = { Accept: "application/json" };
    if (this.token) headers.Authorization = "Bearer " + this.token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const data = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      const e = data.error || {};
      throw new HTTPError(resp.status, e.code || "internal", e.message || resp.statusText, data);
    }
    return data;
  }

  campaigns() { return this.call("GET", "/v1/campaigns"); }
  createCampaign(name, doc) { return this.call("POST", "/v1/campaigns", { name, doc }); }
  campaign(id) { return this.call("GET", `/v1/campaigns/${encodeURIComponent(id)}`); }
  transition(id, action, force = false) {
    return this.call("POST", `/v1/campaigns/${encodeURIComponent(id)}/${action}${force ? "?force=true" : ""}`);
  }
  checks(id) { return this.call("GET", `/v1/campaigns/${encodeURIComponent(id)}/checks`); }
  versions(id) { return this.call("GET", `/v1/campaigns/${encodeURIComponent(id)}/versions`); }
  version(id, v) { return this.call("GET", `/v1/campaigns/${encodeURIComponent(id)}/versions/${v}`); }
  labelVersion(id, v, label) { return this.call("PATCH", `/v1/campaigns/${encodeURIComponent(id)}/versions/${v}`, { label }); }
  restore(id, v) { return this.call("POST", `/v1/campaigns/${encodeURIComponent(id)}/versions/${v}/restore`); }
  audiences() { return this.call("GET", "/v1/audiences"); }
  audience(id, offset, limit) {
    return this.call("GET", `/v1/audiences/${encodeURIComponent(id)}?offset=${offset}&limit=${limit}`);
  }
  devLogin(name) { return this.call("POST", "/v1/dev/login", { name }); }
}
