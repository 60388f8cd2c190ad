"""One error tree: every error knows its CloudBase code and HTTP status.

Only the HTTP layer renders these as `{"code","message","requestId"}` bodies.
"""
from __future__ import annotations


class CloudBaseError(Exception):
    code = "SYS_ERR"
    status = 500
    openai_type = "server_error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


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
MethodNotAllowed = _error("MethodNotAllowed", "INVALID_PATH", 405, "invalid_request_error")
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
ModelRequestFailed = _error("ModelRequestFailed", "AI_MODEL_REQUEST_FAILED", 502, "api_error")
# A timeout is a failed model request too, so the chat service falls back to the next deployment on it.
ModelRequestTimeout = type("ModelRequestTimeout", (ModelRequestFailed,),
                           {"status": 504, "openai_type": "timeout_error"})
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
