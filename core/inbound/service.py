"""scim2-server's protocol service, with the leniency real clients need and less copying.

The storage (``storage.py``) builds every resource it returns afresh from the identity
service, so what scim2-server does to keep its in-memory storage's resources untouched, a
deep copy of each resource it publishes and a second validation of each resource it lists,
is work without a purpose here (together a third of a search's time). The generic models
scim2-server parametrizes per request (``ListResponse[User | Group]``, ``PatchOp[User]``,
...) are kept alive: pydantic caches them weakly, and rebuilds one each time the garbage
collector has taken it (several milliseconds each).
"""

from __future__ import annotations

import contextlib
from functools import cache, lru_cache
from typing import Any, Union, cast

from scim2_models import (
    BulkRequest,
    BulkResponse,
    Context,
    ListResponse,
    PatchOp,
    PatchOperation,
    Path,
    PayloadTooLargeException,
    Reference,
    Resource,
    ResponseParameters,
    SCIMException,
    SearchRequest,
)
from scim2_server.requests import ScimRequest
from scim2_server.responses import ScimResponse
from scim2_server.routing import Target
from scim2_server.routing import match as route
from scim2_server.service import ModelT, ScimService
from scim2_server.storage import SearchPage
from scim2_server.utils import parametrize

from core.inbound import Limits
from core.scim_paths import ensure_selected

#: A frozen Target per method and path (paths carry ids: the most recent are kept).
_route = lru_cache(maxsize=1024)(route)


class IamScimService(ScimService):
    def __init__(self, provider: Any, limits: Limits) -> None:
        super().__init__(provider)
        self.limits = limits
        models = self.get_models()
        every: Any = Union[tuple(models)]  # noqa: UP007  (the spelling scim2-server uses)
        self._generics: list[Any] = [
            parametrize(generic, every)
            for generic in (ListResponse, BulkRequest, BulkResponse, SearchRequest)]
        self._generics += [parametrize(generic, model) for model in models
                           for generic in (PatchOp, ResponseParameters, SearchRequest)]

    def apply_patch(self, current: Resource[Any], patch_op: PatchOp[Any],
                    conditions: Any) -> Resource[Any] | None:
        """Microsoft Entra sends ``add emails[type eq "work"].value`` to a user without a
        work email; create the entry the selection describes instead of ``noTarget``."""
        for operation in patch_op.operations or []:
            if operation.op is not PatchOperation.Op.remove and operation.path:
                with contextlib.suppress(ValueError, SCIMException):
                    ensure_selected(current, parametrize(Path, type(current))(
                        str(operation.path)))
        return super().apply_patch(current, patch_op, conditions)

    def read_body(self, model: type[ModelT], body: bytes, content_type: str | None,
                  scim_ctx: Context) -> ModelT:
        self.ensure_body_size(body)
        return super().read_body(model, body, content_type, scim_ctx)

    def decode_body(self, body: bytes, content_type: str | None) -> Any:
        self.ensure_body_size(body)
        return super().decode_body(body, content_type)

    def ensure_body_size(self, body: bytes) -> None:
        """413 for a body over the limit (scim2-server bounds only bulk bodies itself)."""
        if len(body) > self.limits.max_payload_bytes:
            raise PayloadTooLargeException(
                detail=f"the body exceeds {self.limits.max_payload_bytes} bytes")

    @staticmethod
    def match(request: ScimRequest) -> Target:
        """scim2-server's routing, remembered per method and path: each request is matched
        four times (body limit, authentication, lane, handler), each a walk over every
        route."""
        return _route(request.method.upper(), request.path)

    def max_body_size(self, request: ScimRequest) -> int | None:
        """Every body is bounded (a bulk body by maxPayloadSize, others alike)."""
        limit = super().max_body_size(request)
        return self.limits.max_payload_bytes if limit is None else limit

    # -------------------------------------------------------------- responses
    def publish(self, base_url: str, resource: Resource[Any]) -> Resource[Any]:
        """As scim2-server publishes, on a shallow copy: the storage's resources are built
        for this response alone (see the module's docstring)."""
        assert resource.meta is not None and resource.id is not None
        update: dict[str, Any] = {"location": self.resource_location(
            base_url, self.get_resource_type_of(resource), resource.id)}
        if not self.etag_supported:
            update["version"] = None
        published = resource.model_copy()
        published.meta = resource.meta.model_copy(update=update)
        self._publish_references(base_url, published)
        return published

    def _publish_references(self, base_url: str, resource: Resource[Any]) -> None:
        """Each reference to another resource becomes its URL (scim2-server's, with the
        model's reference attributes looked up once per model, not per resource)."""
        def locate(reference: Any) -> Any:
            if isinstance(reference, list):
                return [locate(item) for item in reference]
            return None if reference is None else self.reference_location(base_url, reference)

        for path, sub_field in _references(type(resource)):
            if sub_field is None:
                path.set(resource, locate(path.get(resource)), strict=False)
                continue
            entries = path.get(resource)
            for entry in entries if isinstance(entries, list) else [entries]:
                if entry is not None:
                    setattr(entry, sub_field, locate(getattr(entry, sub_field)))

    def search_response(self, base_url: str, resource_types: list[Any], page: SearchPage,
                        search_request: SearchRequest[Any]) -> ScimResponse:
        """scim2-server's list response, each resource in it dumped once (scim2-server
        validates its dumps into the ListResponse and dumps them again)."""
        dumped = [self.publish(base_url, resource).model_dump(
            scim_ctx=Context.RESOURCE_QUERY_RESPONSE, response_parameters=search_request)
            for resource in page.resources]
        response = super().search_response(
            base_url, resource_types, SearchPage(page.total, [], page.next, page.previous),
            search_request)
        body = cast(dict[str, Any], response.body)
        body["itemsPerPage"] = len(dumped)
        if dumped:
            body["Resources"] = dumped
        return response


@cache
def _references(model: type[Resource[Any]]) -> list[tuple[Path[Any], str | None]]:
    """Where a model holds references to other resources of this server: the attribute
    holding them (``groups``, ``members``) and its sub-attribute (``ref``), if any."""
    out: list[tuple[Path[Any], str | None]] = []
    for path in parametrize(Path, model).iter_paths(target_type=[Reference]):
        binding = path.resolve()
        assert binding is not None
        kinds = set(cast(Any, binding.target_type).__reference_types__)
        if not kinds or kinds & {"external", "uri"}:
            continue
        if binding.sub_field_name is None:
            out.append((path, None))
            continue
        head = f"{path.schema}:{path.parts[0]}" if path.schema else path.parts[0]
        out.append((parametrize(Path, model)(head), binding.sub_field_name))
    return out
