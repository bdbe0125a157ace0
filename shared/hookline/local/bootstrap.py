"""One local Lambda container: import the handler once, then serve invocations.

Run as a script, standard library only, so it imports nothing from the code it
hosts: for `sam build` output the interpreter is started with `-I -S` and
sys.path is exactly what Lambda's is (the function's code, then each layer's
`python` directories), so a dependency missing from a layer fails here as it
would in AWS. Invocations arrive as JSON lines on stdin; answers leave on the
file descriptor HOOKLINE_WORKER_FD names, because stdout belongs to the
function's own log lines.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time
import traceback
from typing import Any


class LambdaContext:
    """The attributes and method of the Python runtime's context object."""

    def __init__(self, request: dict[str, Any]) -> None:
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.invoked_function_arn = request["function_arn"]
        self.aws_request_id = request["request_id"]
        self.identity = None
        self.client_context = None
        self._deadline_ms = int(request["deadline_ms"])

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error(error: BaseException, kind: str | None = None) -> dict[str, Any]:
    return {
        "errorType": kind or type(error).__name__,
        "errorMessage": str(error),
        "stackTrace": traceback.format_exception(error),
    }


def main() -> int:
    # The stack decides when a container stops (end of stdin), not a Ctrl-C
    # that the terminal sends to every process in the group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.path[:0] = json.loads(os.environ.pop("HOOKLINE_WORKER_PATHS"))
    answers = os.fdopen(int(os.environ.pop("HOOKLINE_WORKER_FD")), "w", buffering=1)

    def answer(message: dict[str, Any]) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        answers.write(json.dumps(message) + "\n")

    module_name, _, attribute = os.environ["_HANDLER"].rpartition(".")
    try:
        handler = getattr(importlib.import_module(module_name), attribute)
    except Exception as error:  # noqa: BLE001 - reported to the stack as Lambda reports it
        traceback.print_exc()
        answer({"ready": False, "error": _error(error, "Runtime.ImportModuleError")})
        return 1
    answer({"ready": True})
    for line in sys.stdin:
        request = json.loads(line)
        os.environ["_X_AMZN_TRACE_ID"] = request["trace_id"]
        try:
            result = handler(request["event"], LambdaContext(request))
            answer({"id": request["request_id"], "result": result})
        except Exception as error:  # noqa: BLE001 - a function error, as Lambda reports it
            traceback.print_exc()
            answer({"id": request["request_id"], "error": _error(error)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
