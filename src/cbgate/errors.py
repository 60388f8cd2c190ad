"""One error tree: every error knows its CloudBase code and HTTP status.

A surface's contract (protocol/) renders them in its envelope (`{"code","message","requestId"}` and, for
Messages, Anthropic's); the HTTP layer writes them.
"""
from __future__ import annotations


class CloudBaseError(Exception):
    code = "SYS_ERR"
    status = 500
    openai_type = "server_error"

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after  # seconds the client should wait before trying again, if known
        # a request's meter recorded this error (metrics and ledger): the edge must not count it again,
        # and counts every other refusal itself, wherever it was raised
        self.counted = False


def _error(name: str, code: str, status: int, openai_type: str) -> type[CloudBaseError]:
    return type(name, (CloudBaseError,), {"code": code, "status": status, "openai_type": openai_type})


# Authentication and authorization.
MissingCredentials = _error("MissingCredentials", "MISSING_CREDENTIALS", 401, "authentication_error")
InvalidAccessToken = _error("InvalidAccessToken", "INVALID_ACCESS_TOKEN", 401, "authentication_error")
AccessTokenExpired = _error("AccessTokenExpired", "ACCESS_TOKEN_EXPIRED", 401, "authentication_error")
PermissionDenied = _error("PermissionDenied", "PERMISSION_DENIED", 403, "permission_error")
InvalidEnv = _error("InvalidEnv", "INVALID_ENV", 403, "permission_error")

# Request shape.
InvalidParam = _error("InvalidParam", "INVALID_PARAM", 400, "invalid_request_error")
InvalidPath = _error("InvalidPath", "INVALID_PATH", 404, "invalid_request_error")


class MethodNotAllowed(CloudBaseError):
    """A path that exists, asked with a method it does not take: RFC 9110 wants the ones it takes in
    `Allow`, which the edge writes from `allow`."""
    code = "INVALID_PATH"
    status = 405
    openai_type = "invalid_request_error"

    def __init__(self, method: str, allow: tuple[str, ...] | list[str]):
        self.allow = tuple(allow)
        super().__init__(f"{method} is not allowed here; use {' or '.join(self.allow)}")


PayloadTooLarge = _error("PayloadTooLarge", "EXCEED_MAX_PAYLOAD_SIZE", 413, "invalid_request_error")
ModelParamRequired = _error("ModelParamRequired", "AI_MODEL_PARAM_REQUIRED", 400, "invalid_request_error")
ModelParamInvalid = _error("ModelParamInvalid", "AI_MODEL_PARAM_INVALID", 400, "invalid_request_error")

# Model resolution.
ModelGroupNotFound = _error("ModelGroupNotFound", "AI_MODEL_NOT_FOUND", 404, "not_found_error")
ModelNotSupported = _error("ModelNotSupported", "AI_MODEL_NOT_SUPPORTED", 400, "invalid_request_error")
ModelDisabled = _error("ModelDisabled", "AI_MODEL_DISABLED", 403, "permission_error")
ModelConfigMissing = _error("ModelConfigMissing", "AI_MODEL_CONFIG_MISSING", 400, "invalid_request_error")

# Admission.
ConcurrencyExceeded = _error(
    "ConcurrencyExceeded", "EXCEED_CONCURRENT_REQUEST_LIMIT", 429, "rate_limit_error")
RateLimitExceeded = _error("RateLimitExceeded", "EXCEED_RATELIMIT", 429, "rate_limit_error")
TokenQuotaExceeded = _error("TokenQuotaExceeded", "EXCEED_TOKEN_QUOTA_LIMIT", 429, "rate_limit_error")

# Upstream and internal.
# An upstream status that says the request itself is wrong (a bad parameter, a prompt too long): another
# deployment of the same model would refuse it too, so it goes back to the client instead of falling back.
CLIENT_CAUSED_STATUSES = frozenset({400, 413, 422})


class ModelRequestFailed(CloudBaseError):
    """A deployment failed to answer. `upstream_status` is the status it answered with, if it answered;
    `client_caused` says the client's own request was refused, which the client gets back as it is
    (the upstream's status and reason), not as a gateway failure."""
    code = "AI_MODEL_REQUEST_FAILED"
    status = 502
    openai_type = "api_error"

    def __init__(self, message: str, *, upstream_status: int | None = None, retry_after: float | None = None,
                 usage=None):
        super().__init__(message, retry_after=retry_after)
        self.upstream_status = upstream_status
        self.usage = usage  # a Usage of what the deployment generated before it failed, billed when known
        self.client_caused = upstream_status in CLIENT_CAUSED_STATUSES
        # when every deployment failed: (deployment, failure) for each, in the order tried; the client gets
        # the last of them
        self.failures: list[tuple[str, ModelRequestFailed]] = []
        if self.client_caused:
            self.code, self.status, self.openai_type = "AI_MODEL_PARAM_INVALID", upstream_status, "invalid_request_error"


# A timeout is a failed model request too, so the model service falls back to the next deployment on it.
ModelRequestTimeout = type("ModelRequestTimeout", (ModelRequestFailed,),
                           {"status": 504, "openai_type": "timeout_error"})
# The Agent API (/v1/aibot): CloudBase's own codes for it.
AgentInvalidParam = _error("AgentInvalidParam", "AGENT_INVALID_PARAM", 400, "invalid_request_error")
AgentNotFound = _error("AgentNotFound", "AGENT_GET_INFO_ERROR", 404, "not_found_error")  # another env's too
AgentRequestLLMError = _error("AgentRequestLLMError", "AGENT_REQUEST_LLM_ERROR", 502, "api_error")
AgentServerError = _error("AgentServerError", "AGENT_SERVER_ERR", 502, "api_error")  # a fronted agent failed
ServiceUnavailable = _error("ServiceUnavailable", "SYS_ERR", 503, "server_error")
InternalError = _error("InternalError", "SYS_ERR", 500, "server_error")


def error_body(err: CloudBaseError, request_id: str) -> dict:
    """The CloudBase body, with OpenAI's `error` object beside it so OpenAI SDKs show the message."""
    return {
        "code": err.code,
        "message": err.message,
        "requestId": request_id,
        "error": {"message": err.message, "type": err.openai_type, "code": err.code},
    }
