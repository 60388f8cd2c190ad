// Console strings in English and Chinese; the choice is kept in localStorage. Every key exists in both
// languages (a browser test checks it), and "{n}" in a string is filled by t(key, {n}).
export const STRINGS = {
  en: {
    signIn: "Sign in", signOut: "Sign out", tokenLabel: "Operator token or server API key",
    signInHelp: "The token stays in this browser tab only (sessionStorage).",
    signInWhere: "No token yet? On the gateway's machine run",
    signInWhereAfter: "It prints an operator token once. A server API key of an environment works too.",
    envs: "Environments", keys: "API keys", models: "Model groups", limits: "Limits", usage: "Usage",
    playground: "Playground", env: "Environment", created: "Created", id: "ID", createEnv: "Create environment",
    newEnvId: "New environment id (optional)", origins: "Allowed browser origins",
    originsHelp: "Pages on these origins may call the chat API with this environment's publishable keys. One per line.",
    save: "Save", saved: "Saved", prefix: "Prefix", name: "Name", kind: "Kind", lastUsed: "Last used",
    expires: "Expires", revoked: "Revoked", revoke: "Revoke", createKey: "Create key", server: "server",
    publishable: "publishable", expiresDays: "Expires in days (optional)", key: "Key",
    keyOnce: "Copy this key now. It is shown only this once:", copy: "Copy", copied: "Copied",
    group: "Group", model: "Model", enabled: "Enabled", on: "on", off: "off", builtin: "built-in", custom: "custom",
    noLimits: "This gateway has no limits to show for the environment.", lastDays: "Last {n} days",
    period: "Period", requests: "Requests", errors: "Errors", promptTokens: "Prompt tokens",
    completionTokens: "Completion tokens", totalTokens: "Total tokens", cost: "Cost", unpriced: "unpriced", tokensPerDay: "Tokens per day, by model",
    requestsOverTime: "Requests and errors per day", byModel: "By model", byKey: "By key",
    recent: "Recent requests", status: "Status", code: "Code", latency: "Latency (ms)", time: "Time",
    noData: "No traffic yet.", send: "Send", stop: "Stop", prompt: "Message", answer: "Answer",
    noModels: "No model is switched on in this environment.",
    confirmRevoke: "Revoke this key? Clients using it will be refused at once.", error: "Error",
    keySet: "key set (hidden)", keyNotSet: "no key set", delete: "Delete",
    confirmDelete: "Delete this group? Its models stop answering at once.", createGroup: "Add a custom group",
    createGroupHelp: "Any OpenAI-compatible (vLLM, SGLang, ...) or Anthropic Messages upstream. The key is stored encrypted and never shown.",
    group_name: "Group name", group_base_url: "Base URL", group_base_url_hint: "e.g. https://llm.example.com/v1",
    group_models: "Models", group_models_hint: "comma-separated", group_api_key: "Upstream key",
    group_protocol: "Protocol", checkUpstream: "Check it answers before adding",
    checkFailedHint: "Untick “Check it answers before adding” to add the group anyway.",
    settings: "Settings", timeouts: "Timeouts (seconds, empty: default)", timeout_connect: "Connect",
    timeout_first_byte: "First byte", timeout_idle: "Idle", timeout_total: "Total",
    keyKeep: "leave empty to keep the key", test: "Test", testing: "Testing…",
    testOk: "The upstream answered in {n} ms.", testFailed: "The upstream did not answer",
    noLimit: "no limit", limitsHelp: "Empty means no limit. Publishable keys get a smaller share of these.",
    limitsOperatorOnly: "Only an operator can change the limits.", limit_concurrency: "Concurrent requests",
    limit_rpm: "Requests per minute", limit_tpm: "Tokens per minute", limit_token_quota: "Token quota (total)",
    systemPrompt: "System prompt", temperature: "Temperature", maxTokens: "Max tokens", newChat: "New chat",
    you: "You", assistant: "Assistant", tokensOut: "{n} tokens", firstToken: "first token {n} ms",
    totalTime: "{n} ms in all", stopped: "stopped", copyAs: "Copy as", snippetHelp: "Set CBGATE_API_KEY to a server key of this environment first.",
    usingOwnKey: "Chatting with the key you signed in with.",
    playgroundKeyHelp: "An operator token cannot chat: on the first message the console makes one short-lived server key (\"console playground\", expires in 8 hours) for this browser, shared by its tabs.",
    playgroundKeyLive: "Using this browser's playground key {n} (expires {when}).",
    mcp: "MCP", mcpHelp: "MCP servers this environment's keys reach through the gateway. A key's --mcp list decides which tools it may call.",
    mcpName: "Service name", mcpUrl: "URL", mcpTransport: "Transport", mcpTimeout: "Timeout (s)",
    mcpHeaders: "Headers", mcpHeadersHint: "One 'Name: value' per line: the server's own credentials, stored encrypted, never shown.",
    mcpHeadersSet: "set (hidden)", mcpNoHeaders: "none", mcpPath: "Client path", createMcp: "Add an MCP server",
    mcpNone: "No MCP server yet.", confirmDeleteMcp: "Delete this MCP service? Its clients are refused at once.",
    mcpCalls: "Tool calls, last 30 days", mcpService: "Service", mcpTool: "Tool", mcpOutcome: "Outcome",
    agents: "Agents", agent: "Agent", createAgent: "Add an agent", agentChat: "Chat with an agent",
    agent_url: "AG-UI server URL (instead of a model)", agent_url_hint: "a fronted agent: its /send-message gets the runs",
    agent_instructions: "Instructions", agent_welcome: "Welcome message", agent_runs_on: "Runs on",
    agent_tools: "Tools the chat declares (AG-UI JSON, optional)", agent_tools_hint: "the model's calls show as they stream",
    toolCall: "Tool call", toolResult: "Tool result", noAgents: "No agent in this environment yet.",
    agent_mcp_services: "MCP services (optional)",
    agent_mcp_services_hint: "comma-separated: the gateway calls their tools for the key that runs the agent",
    confirmDeleteAgent: "Delete this agent with its conversations?",
  },
  zh: {
    signIn: "登录", signOut: "退出", tokenLabel: "运维令牌或服务端 API Key",
    signInHelp: "令牌只保存在当前浏览器标签页（sessionStorage）。",
    signInWhere: "还没有令牌？在网关所在机器上运行",
    signInWhereAfter: "它只显示一次运维令牌。也可以使用某个环境的服务端 API Key。",
    envs: "环境", keys: "API Key", models: "模型分组", limits: "限额", usage: "用量",
    playground: "调试", env: "环境", created: "创建时间", id: "ID", createEnv: "创建环境",
    newEnvId: "新环境 ID（可选）", origins: "允许的浏览器来源",
    originsHelp: "这些来源的网页可以用本环境的可公开 Key 调用对话接口。每行一个。",
    save: "保存", saved: "已保存", prefix: "前缀", name: "名称", kind: "类型", lastUsed: "最近使用",
    expires: "过期时间", revoked: "已吊销", revoke: "吊销", createKey: "创建 Key", server: "服务端",
    publishable: "可公开", expiresDays: "有效天数（可选）", key: "Key",
    keyOnce: "请立即复制此 Key，它只显示这一次：", copy: "复制", copied: "已复制",
    group: "分组", model: "模型", enabled: "启用", on: "开", off: "关", builtin: "内置", custom: "自定义",
    noLimits: "本网关没有可显示的环境限额。", lastDays: "最近 {n} 天",
    period: "时间范围", requests: "请求数", errors: "错误数", promptTokens: "输入 Token",
    completionTokens: "输出 Token", totalTokens: "总 Token", cost: "费用", unpriced: "未定价", tokensPerDay: "每日 Token（按模型）",
    requestsOverTime: "每日请求与错误", byModel: "按模型", byKey: "按 Key",
    recent: "最近请求", status: "状态", code: "错误码", latency: "耗时（毫秒）", time: "时间",
    noData: "暂无调用。", send: "发送", stop: "停止", prompt: "消息", answer: "回答",
    noModels: "此环境没有已启用的模型。",
    confirmRevoke: "确定吊销此 Key？使用它的客户端会立即被拒绝。", error: "错误",
    keySet: "已设置 Key（隐藏）", keyNotSet: "未设置 Key", delete: "删除",
    confirmDelete: "确定删除此分组？其模型会立即停止响应。", createGroup: "添加自定义分组",
    createGroupHelp: "任何兼容 OpenAI（vLLM、SGLang 等）或 Anthropic Messages 协议的上游。Key 加密保存，不会再显示。",
    group_name: "分组名称", group_base_url: "Base URL", group_base_url_hint: "如 https://llm.example.com/v1",
    group_models: "模型", group_models_hint: "逗号分隔", group_api_key: "上游 Key",
    group_protocol: "协议", checkUpstream: "添加前检查能否连通",
    checkFailedHint: "取消勾选“添加前检查能否连通”即可直接添加此分组。",
    settings: "设置", timeouts: "超时（秒，留空为默认）", timeout_connect: "连接",
    timeout_first_byte: "首字节", timeout_idle: "空闲", timeout_total: "总计",
    keyKeep: "留空则保留原 Key", test: "测试", testing: "测试中…",
    testOk: "上游在 {n} 毫秒内响应。", testFailed: "上游没有正常响应",
    noLimit: "不限", limitsHelp: "留空表示不限。可公开 Key 只能用到其中较小的一部分。",
    limitsOperatorOnly: "只有运维人员可以修改限额。", limit_concurrency: "并发请求数",
    limit_rpm: "每分钟请求数", limit_tpm: "每分钟 Token 数", limit_token_quota: "Token 总配额",
    systemPrompt: "系统提示词", temperature: "温度", maxTokens: "最大 Token 数", newChat: "新对话",
    you: "你", assistant: "助手", tokensOut: "{n} 个 Token", firstToken: "首 Token {n} 毫秒",
    totalTime: "共 {n} 毫秒", stopped: "已停止", copyAs: "复制为", snippetHelp: "请先把 CBGATE_API_KEY 设为本环境的服务端 Key。",
    usingOwnKey: "使用登录时的 Key 对话。",
    playgroundKeyHelp: "运维令牌不能直接对话：发送第一条消息时，控制台会为本浏览器创建一个短期服务端 Key（“console playground”，8 小时后过期），各标签页共用。",
    playgroundKeyLive: "正在使用本浏览器的调试 Key {n}（过期时间 {when}）。",
    mcp: "MCP", mcpHelp: "本环境的 Key 通过网关访问的 MCP 服务器。Key 的 --mcp 列表决定它能调用哪些工具。",
    mcpName: "服务名", mcpUrl: "URL", mcpTransport: "传输方式", mcpTimeout: "超时（秒）",
    mcpHeaders: "请求头", mcpHeadersHint: "每行一个“名称: 值”：服务器自己的凭据，加密保存，不再显示。",
    mcpHeadersSet: "已设置（隐藏）", mcpNoHeaders: "无", mcpPath: "客户端路径", createMcp: "添加 MCP 服务器",
    mcpNone: "还没有 MCP 服务器。", confirmDeleteMcp: "删除这个 MCP 服务？它的客户端会立即被拒绝。",
    mcpCalls: "近 30 天的工具调用", mcpService: "服务", mcpTool: "工具", mcpOutcome: "结果",
    agents: "智能体", agent: "智能体", createAgent: "添加智能体", agentChat: "与智能体对话",
    agent_url: "AG-UI 服务地址（不用模型时）", agent_url_hint: "托管的智能体：运行发往其 /send-message",
    agent_instructions: "指令", agent_welcome: "欢迎语", agent_runs_on: "运行于",
    agent_tools: "对话声明的工具（AG-UI JSON，可选）", agent_tools_hint: "模型的工具调用会随流显示",
    toolCall: "工具调用", toolResult: "工具结果", noAgents: "本环境还没有智能体。",
    agent_mcp_services: "MCP 服务（可选）", agent_mcp_services_hint: "逗号分隔：网关以运行智能体的密钥调用其工具",
    confirmDeleteAgent: "删除此智能体及其会话？",
  },
};

let lang = localStorage.getItem("cbgate.lang") || (navigator.language.startsWith("zh") ? "zh" : "en");

export function t(key, values = {}) {
  const text = STRINGS[lang][key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

export function currentLang() {
  return lang;
}

export function setLang(value) {
  lang = value in STRINGS ? value : "en";
  localStorage.setItem("cbgate.lang", lang);
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
}

export function otherLang() {
  return lang === "zh" ? "en" : "zh";
}
