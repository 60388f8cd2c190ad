// Console strings in English and Chinese; the choice is kept in localStorage.
const STRINGS = {
  en: {
    signIn: "Sign in", signOut: "Sign out", tokenLabel: "Operator token or server API key",
    signInHelp: "The token stays in this browser tab only (sessionStorage).",
    envs: "Environments", keys: "API keys", models: "Model groups", limits: "Limits", usage: "Usage",
    playground: "Playground", env: "Environment", created: "Created", id: "ID", createEnv: "Create environment",
    newEnvId: "New environment id (optional)", origins: "Allowed browser origins",
    originsHelp: "Pages on these origins may call the chat API with this environment's publishable keys. One per line.",
    save: "Save", saved: "Saved", prefix: "Prefix", name: "Name", kind: "Kind", lastUsed: "Last used",
    expires: "Expires", revoked: "Revoked", revoke: "Revoke", createKey: "Create key", server: "server",
    publishable: "publishable", expiresDays: "Expires in days (optional)",
    keyOnce: "Copy this key now. It is shown only this once:", copy: "Copy", copied: "Copied",
    group: "Group", model: "Model", enabled: "Enabled", on: "on", off: "off", builtin: "built-in", custom: "custom",
    noLimits: "This gateway has no limits to show for the environment.", days: "Days",
    requests: "Requests", errors: "Errors", promptTokens: "Prompt tokens", completionTokens: "Completion tokens",
    totalTokens: "Total tokens", tokensPerDay: "Tokens per day, by model", requestsOverTime: "Requests and errors per day",
    byModel: "By model", byKey: "By key", recent: "Recent requests", status: "Status", code: "Code",
    latency: "Latency (ms)", time: "Time", noData: "No traffic yet.", send: "Send", stop: "Stop",
    prompt: "Message", answer: "Answer", playgroundKey: "API key used for chat",
    createPlaygroundKey: "Create a playground key for this environment",
    playgroundKeyHelp: "An operator token cannot chat; the playground uses a server key of the chosen environment.",
    usingOwnKey: "Chatting with the key you signed in with.", noModels: "No model is switched on in this environment.",
    confirmRevoke: "Revoke this key? Clients using it will be refused at once.", error: "Error",
    keySet: "key set (hidden)", keyNotSet: "no key set", setKey: "Set key", delete: "Delete",
    confirmDelete: "Delete this group? Its models stop answering at once.", createGroup: "Add a custom group",
    createGroupHelp: "Any OpenAI-compatible or Anthropic Messages upstream. The key is stored encrypted and never shown.",
    group_name: "Group name", group_base_url: "Base URL, e.g. https://llm.example.com/v1",
    group_models: "Models, comma-separated", group_api_key: "Upstream key", checkUpstream: "Check it answers",
    noLimit: "no limit", limitsHelp: "Empty means no limit. Publishable keys get a smaller share of these.",
    limitsOperatorOnly: "Only an operator can change the limits.", limit_concurrency: "Concurrent requests",
    limit_rpm: "Requests per minute", limit_tpm: "Tokens per minute", limit_token_quota: "Token quota (total)",
  },
  zh: {
    signIn: "登录", signOut: "退出", tokenLabel: "运维令牌或服务端 API Key",
    signInHelp: "令牌只保存在当前浏览器标签页（sessionStorage）。",
    envs: "环境", keys: "API Key", models: "模型分组", limits: "限额", usage: "用量",
    playground: "调试", env: "环境", created: "创建时间", id: "ID", createEnv: "创建环境",
    newEnvId: "新环境 ID（可选）", origins: "允许的浏览器来源",
    originsHelp: "这些来源的网页可以用本环境的可公开 Key 调用对话接口。每行一个。",
    save: "保存", saved: "已保存", prefix: "前缀", name: "名称", kind: "类型", lastUsed: "最近使用",
    expires: "过期时间", revoked: "已吊销", revoke: "吊销", createKey: "创建 Key", server: "服务端",
    publishable: "可公开", expiresDays: "有效天数（可选）",
    keyOnce: "请立即复制此 Key，它只显示这一次：", copy: "复制", copied: "已复制",
    group: "分组", model: "模型", enabled: "启用", on: "开", off: "关", builtin: "内置", custom: "自定义",
    noLimits: "本网关没有可显示的环境限额。", days: "天数",
    requests: "请求数", errors: "错误数", promptTokens: "输入 Token", completionTokens: "输出 Token",
    totalTokens: "总 Token", tokensPerDay: "每日 Token（按模型）", requestsOverTime: "每日请求与错误",
    byModel: "按模型", byKey: "按 Key", recent: "最近请求", status: "状态", code: "错误码",
    latency: "耗时（毫秒）", time: "时间", noData: "暂无调用。", send: "发送", stop: "停止",
    prompt: "消息", answer: "回答", playgroundKey: "用于对话的 API Key",
    createPlaygroundKey: "为此环境创建一个调试用 Key",
    playgroundKeyHelp: "运维令牌不能直接对话；调试页使用所选环境的服务端 Key。",
    usingOwnKey: "使用登录时的 Key 对话。", noModels: "此环境没有已启用的模型。",
    confirmRevoke: "确定吊销此 Key？使用它的客户端会立即被拒绝。", error: "错误",
    keySet: "已设置 Key（隐藏）", keyNotSet: "未设置 Key", setKey: "设置 Key", delete: "删除",
    confirmDelete: "确定删除此分组？其模型会立即停止响应。", createGroup: "添加自定义分组",
    createGroupHelp: "任何兼容 OpenAI 或 Anthropic Messages 协议的上游。Key 加密保存，不会再显示。",
    group_name: "分组名称", group_base_url: "Base URL，如 https://llm.example.com/v1",
    group_models: "模型，逗号分隔", group_api_key: "上游 Key", checkUpstream: "检查能否连通",
    noLimit: "不限", limitsHelp: "留空表示不限。可公开 Key 只能用到其中较小的一部分。",
    limitsOperatorOnly: "只有运维人员可以修改限额。", limit_concurrency: "并发请求数",
    limit_rpm: "每分钟请求数", limit_tpm: "每分钟 Token 数", limit_token_quota: "Token 总配额",
  },
};

let lang = localStorage.getItem("cbgate.lang") || (navigator.language.startsWith("zh") ? "zh" : "en");

export function t(key) {
  return STRINGS[lang][key] ?? STRINGS.en[key] ?? key;
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
