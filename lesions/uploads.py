"""Upload limits enforced while the request arrives, before any image is read into memory.

- UploadLimitsMiddleware refuses a request whose declared size (Content-Length) is above
  UPLOAD_MAX_REQUEST_BYTES before a byte of its body is read.
- UploadLimitsHandler (first in FILE_UPLOAD_HANDLERS) counts the files of a request and the bytes
  of each file as they stream in: a file above UPLOAD_MAX_BYTES (declared in its part header or
  streamed) is skipped there, and more than UPLOAD_MAX_FILES files refuse the whole request.
  What was refused is left on the request for the view to say (upload_refusals).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, SkipFile, StopUpload
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import Resolver404, resolve, reverse

from lesions.images import megabytes

JSON_VIEWS = {"lesion_webcam"}


def limits_sentence() -> str:
    return (f"Send at most {settings.UPLOAD_MAX_FILES} images at once, each at most "
            f"{megabytes(settings.UPLOAD_MAX_BYTES)} MB.")


def refusals_of(request: HttpRequest) -> list[str]:
    return list(getattr(request, "upload_refusals", []))


def whole_request_refused(request: HttpRequest) -> bool:
    return bool(getattr(request, "upload_refused_whole", False))


def _refuse(request: HttpRequest, message: str, *, whole: bool = False) -> None:
    if not hasattr(request, "upload_refusals"):
        request.upload_refusals = []
    request.upload_refusals.append(message)
    if whole:
        request.upload_refused_whole = True


class UploadLimitsHandler(FileUploadHandler):
    def __init__(self, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.files_seen = 0
        self.received = 0

    def new_file(self, field_name, file_name, content_type, content_length, charset=None,
                 content_type_extra=None) -> None:
        super().new_file(field_name, file_name, content_type, content_length, charset, content_type_extra)
        self.files_seen += 1
        self.received = 0
        if self.files_seen > settings.UPLOAD_MAX_FILES:
            _refuse(self.request, f"More than {settings.UPLOAD_MAX_FILES} images were sent at once; nothing was "
                                  f"saved. {limits_sentence()}", whole=True)
            raise StopUpload(connection_reset=False)
        if content_length is not None and content_length > settings.UPLOAD_MAX_BYTES:
            self._too_large()

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > settings.UPLOAD_MAX_BYTES:
            self._too_large()
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handlers build the file

    def _too_large(self) -> None:
        _refuse(self.request, f"{self.file_name}: the file is larger than {megabytes(settings.UPLOAD_MAX_BYTES)} MB; "
                              f"the limit is {megabytes(settings.UPLOAD_MAX_BYTES)} MB per image.")
        raise SkipFile


class UploadLimitsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST":
            try:
                declared = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                declared = 0
            if declared > settings.UPLOAD_MAX_REQUEST_BYTES:
                return self.refusal(request, declared)
        return self.get_response(request)

    def refusal(self, request: HttpRequest, declared: int) -> HttpResponse:
        message = (f"The upload is {megabytes(declared, round_up=True)} MB; the limit is "
                   f"{megabytes(settings.UPLOAD_MAX_REQUEST_BYTES)} MB per request. Nothing was saved. "
                   f"{limits_sentence()}")
        try:
            match = resolve(request.path_info)
        except Resolver404:
            match = None
        if match is not None and match.url_name in JSON_VIEWS:
            return JsonResponse({"ok": False, "error": message}, status=413)
        back = reverse("lesion_case", kwargs=match.kwargs) if match and match.url_name == "lesion_upload" else None
        return render(request, "lesions/upload_refused.html", {"message": message, "back": back}, status=413)
