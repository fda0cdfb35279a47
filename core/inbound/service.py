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
from http import HTTPStatus
from typing import Any, Union, cast, get_args

from pydantic import ValidationError
from scim2_models import (
    BaseModel,
    BulkRequest,
    BulkResponse,
    Context,
    InvalidFilterException,
    ListResponse,
    PatchOp,
    PatchOperation,
    Path,
    PayloadTooLargeException,
    Reference,
    Resource,
    ResourceType,
    ResponseParameters,
    Returned,
    SCIMException,
    SearchRequest,
)
from scim2_models.path import FilterNode, LogicalExpr, ValuePath
from scim2_models.path import Not as ScimNot
from scim2_server.requests import ScimRequest
from scim2_server.responses import ScimResponse
from scim2_server.routing import Target
from scim2_server.routing import match as route
from scim2_server.service import ScimService, scim_exception_of
from scim2_server.storage import SearchPage
from scim2_server.utils import parametrize

from core.inbound import Limits
from core.inbound.plaincreate import PlainCreation
from core.inbound.resources import written_dump
from core.inbound.simplepatch import SimplePatch, SimplePatches
from core.inbound.unstored import Unstored
from core.scim_paths import ensure_selected

#: The schema of a list response.
_LIST_RESPONSE = str(ListResponse.__schema__)
#: A frozen Target per method and path (paths carry ids: the most recent are kept).
_route = lru_cache(maxsize=1024)(route)


class IamScimService(ScimService):
    def __init__(self, provider: Any, limits: Limits, unstored: Unstored | None = None
                 ) -> None:
        super().__init__(provider)
        self.limits = limits
        self.unstored = unstored
        #: endpoint name (lower case, e.g. "users") -> the main schema of its resources.
        self._endpoint_schemas = {
            str(t.endpoint).strip("/").lower(): str(t.schema_) for t in
            provider.resource_types}
        models = self.get_models()
        every: Any = Union[tuple(models)]  # noqa: UP007  (the spelling scim2-server uses)
        self._generics: list[Any] = [
            parametrize(generic, every)
            for generic in (ListResponse, BulkRequest, BulkResponse, SearchRequest)]
        self._generics += [parametrize(generic, model) for model in models
                           for generic in (PatchOp, ResponseParameters, SearchRequest)]
        #: resource type id -> the simple PATCH shapes and the plain creation bodies of
        #: its model (Users only).
        users = [t for t in provider.resource_types if t.name == "User"]
        self._simple = {str(t.id): SimplePatches(self.get_model(t)) for t in users}
        self._plain = {str(t.id): PlainCreation(self.get_model(t)) for t in users}

    def read_body(self, model: type[Any], body: bytes, content_type: str | None,
                  scim_ctx: Context) -> Any:
        """scim2-server's validation, after the standard attributes this deployment does
        not store are taken out (``unstored.py``)."""
        return self._validated(model, self._decoded(model, body, content_type), scim_ctx)

    def read_creation(self, resource_type: ResourceType, body: bytes,
                      content_type: str | None) -> Resource[Any]:
        """A User POST body of the common shape validated plainly (``plaincreate.py``: the
        same resource in a third of the time); any other as scim2-server reads it."""
        model = self.get_model(resource_type)
        data = self._decoded(model, body, content_type)
        plain = self._plain.get(resource_type.id or "")
        read = plain.read(data) if plain is not None else None
        return read if read is not None else self._validated(
            model, data, Context.RESOURCE_CREATION_REQUEST)

    def read_patch(self, resource_type: ResourceType, body: bytes,
                   content_type: str | None) -> PatchOp[Any]:
        """A User PATCH of the common shapes as a ``SimplePatch`` (``simplepatch.py``: the
        handler only hands it to :meth:`apply_patch`, which applies it as scim2-models
        would, in a fraction of the time); any other as scim2-server reads it."""
        self.ensure_patch_supported()
        model = parametrize(PatchOp, self.get_model(resource_type))
        data = self._decoded(model, body, content_type)
        simple = self._simple.get(resource_type.id or "")
        read = simple.read(data) if simple is not None else None
        if read is not None:
            return cast("PatchOp[Any]", read)
        return cast("PatchOp[Any]", self._validated(model, data,
                                                  Context.RESOURCE_PATCH_REQUEST))

    def _decoded(self, model: type[Any], body: bytes, content_type: str | None) -> Any:
        """A request's body decoded, without the standard attributes not stored."""
        data = self.decode_body(body, content_type)
        return self._prune(model, data) if self.unstored is not None else data

    def _validated(self, model: type[Any], data: Any, scim_ctx: Context) -> Any:
        """A decoded body validated as ``model`` in ``scim_ctx`` (400 if it is not one)."""
        try:
            if isinstance(data, dict) and _is_patch(model) and not data.get(
                    next((k for k in data if k.lower() == "operations"), "Operations"),
                    True):
                # Every operation was on something not stored: a PATCH that changes nothing.
                return model.model_construct(schemas=[PatchOp.__schema__],
                                             operations=[])
            return model.model_validate(data, scim_ctx=scim_ctx)
        except ValidationError as exception:
            raise scim_exception_of(exception) from exception

    def _prune(self, model: type[Any], data: Any) -> Any:
        assert self.unstored is not None
        if _is_patch(model):
            main = _main_schema(model.__pydantic_generic_metadata__["args"][0])
            return self.unstored.patch(data, main) if main else data
        if isinstance(model, type) and issubclass(model, Resource):
            main = _main_schema(model)
            return self.unstored.resource(data, main) if main else data
        if _generic_origin(model) is BulkRequest:
            return self.unstored.bulk(data, self._endpoint_schemas)
        return data

    def read_search(self, resource_types: list[Any], payload: Any
                    ) -> tuple[SearchRequest[Any], Any]:
        """scim2-server's reading of a search, within this server's filter limits."""
        raw = next((v for k, v in payload.items() if k.lower() == "filter"), None) \
            if isinstance(payload, dict) else None
        if isinstance(raw, str) and len(raw) > self.limits.max_filter_length:
            raise InvalidFilterException(
                detail=f"the filter is {len(raw)} characters long; at most "
                       f"{self.limits.max_filter_length} are accepted")
        search_request, position = super().read_search(resource_types, payload)
        if search_request.filter is not None:
            check_filter_size(search_request.filter.ast, self.limits)
        return search_request, position

    def apply_patch(self, current: Resource[Any], patch_op: PatchOp[Any],
                    conditions: Any) -> Resource[Any] | None:
        """Microsoft Entra sends ``add emails[type eq "work"].value`` to a user without a
        work email; create the entry the selection describes instead of ``noTarget``. A
        ``SimplePatch`` selects nothing."""
        if isinstance(patch_op, SimplePatch):
            return super().apply_patch(current, patch_op, conditions)
        for operation in patch_op.operations or []:
            if operation.op is not PatchOperation.Op.remove and operation.path:
                with contextlib.suppress(ValueError, SCIMException):
                    ensure_selected(current, parametrize(Path, type(current))(
                        str(operation.path)))
        return super().apply_patch(current, patch_op, conditions)

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
        # The copy's meta given to model_copy: an assignment would validate the whole
        # resource again (its model validators), for a value that is a Meta already.
        published = resource.model_copy(update={"meta": resource.meta.model_copy(
            update=update)})
        self._publish_references(base_url, published)
        return published

    def _publish_references(self, base_url: str, resource: Resource[Any]) -> None:
        """Each reference to another resource becomes its URL (scim2-server's, with the
        model's reference attributes looked up once per model, not per resource)."""
        def locate(reference: Any) -> Any:
            if isinstance(reference, list):
                return [locate(item) for item in reference]
            return None if reference is None else self.reference_location(base_url, reference)

        for path, sub_field, field, extension in _references(type(resource)):
            holder = resource if extension is None else resource[extension]
            if holder is None or not getattr(holder, field, None):
                continue  # nothing to publish (reading the path costs some 20 us even so)
            if sub_field is None:
                path.set(resource, locate(path.get(resource)), strict=False)
                continue
            entries = path.get(resource)
            for entry in entries if isinstance(entries, list) else [entries]:
                if entry is not None:
                    setattr(entry, sub_field, locate(getattr(entry, sub_field)))

    @staticmethod
    def resource_response(resource: Resource[Any], scim_ctx: Context,
                          response_parameters: ResponseParameters[Any] | None = None,
                          status: HTTPStatus = HTTPStatus.OK) -> ScimResponse:
        """scim2-server's answer with a resource, dumped by :func:`response_dump`."""
        return _resource_response(
            resource, response_dump(resource, scim_ctx, response_parameters), status)

    def creation_response(self, base_url: str, created: Resource[Any]) -> ScimResponse:
        """scim2-server's 201; a User written as sent is answered with the dump its claims
        were read from (``resources.written_dump``), its ``id`` and ``meta`` added, instead
        of a second dump of the same content (see :func:`written_response_dump`)."""
        dumped = written_dump(created)
        if dumped is None:
            return super().creation_response(base_url, created)
        resource = self.publish(base_url, created)
        body = written_response_dump(resource, dumped)
        if body is None:
            return super().creation_response(base_url, created)
        assert resource.meta is not None and resource.meta.location is not None
        result = _resource_response(resource, body, HTTPStatus.CREATED)
        result.headers["Location"] = resource.meta.location
        return result

    def search_response(self, base_url: str, resource_types: list[Any], page: SearchPage,
                        search_request: SearchRequest[Any]) -> ScimResponse:
        """scim2-server's list response, each resource in it dumped once (scim2-server
        validates its dumps into the ListResponse and dumps them again)."""
        dumped = [response_dump(self.publish(base_url, resource),
                                Context.RESOURCE_QUERY_RESPONSE, search_request)
                  for resource in page.resources]
        if search_request.cursor is None and page.total is not None and \
                search_request.start_index is not None:
            # Paged by index: the ListResponse scim2-server validates and dumps in the
            # response context (some 70 us of a GET by filter) is these four members.
            return ScimResponse(HTTPStatus.OK, {
                "schemas": [_LIST_RESPONSE], "totalResults": page.total,
                "startIndex": search_request.start_index, "itemsPerPage": len(dumped),
                "Resources": dumped})
        response = super().search_response(
            base_url, resource_types, SearchPage(page.total, [], page.next, page.previous),
            search_request)
        body = cast(dict[str, Any], response.body)
        body["itemsPerPage"] = len(dumped)
        if dumped:
            body["Resources"] = dumped
        return response


def _resource_response(resource: Resource[Any], body: dict[str, Any], status: HTTPStatus
                       ) -> ScimResponse:
    assert resource.meta is not None and resource.meta.location is not None
    headers = {"Content-Location": resource.meta.location}
    if resource.meta.version:
        headers["ETag"] = resource.meta.version
    return ScimResponse(status, body, headers)


def written_response_dump(resource: Resource[Any], dumped: dict[str, Any]
                          ) -> dict[str, Any] | None:
    """``response_dump(resource, <a response context>, None)`` for a published resource
    whose ``model_dump()`` without ``id`` and ``meta`` is ``dumped``: those two put in
    their places (the model's field order), the attributes a response leaves out taken
    out. None when publishing may have changed what ``dumped`` holds (the resource holds
    a reference to another resource, which becomes a URL) or when the plain dump is not
    the response's (``_not_returned``): then the resource is dumped."""
    model = type(resource)
    hidden = _not_returned(model)
    if hidden is None or any(
            getattr(resource if extension is None else resource[extension], field, None)
            for _, _, field, extension in _references(model)):
        return None
    assert resource.meta is not None
    out: dict[str, Any] = {}
    for alias in _aliases(model):
        if alias == "id":
            out["id"] = resource.id
        elif alias == "meta":
            out["meta"] = resource.meta.model_dump()
        elif alias in dumped and alias not in hidden:
            out[alias] = dumped[alias]
    if len(out) - 2 + sum(alias in dumped for alias in hidden) != len(dumped):
        return None  # a key that is no field's (an unknown attribute kept): dump it
    return out


@cache
def _aliases(model: type[BaseModel]) -> tuple[str, ...]:
    """The keys a model's fields dump as, in its dump's order."""
    return tuple(field.serialization_alias or name for name, field in
                 model.model_fields.items())


def response_dump(resource: Resource[Any], scim_ctx: Context,
                  parameters: ResponseParameters[Any] | None) -> dict[str, Any]:
    """``resource.model_dump(scim_ctx=scim_ctx, response_parameters=parameters)``.

    When the response asks for no attributes nor leaves any out, and only the resource's
    own attributes (not those of its complex attributes or extensions) can be "returned
    never" or "on request", that dump is the plain ``model_dump()`` without those: the
    same bytes in about a quarter of the time (scim2-models' response context checks each
    attribute at every level). Anything else is dumped by scim2-models."""
    hidden = _not_returned(type(resource)) if Context.is_response(scim_ctx) and (
        parameters is None or not (parameters.attributes or
                                   parameters.excluded_attributes)) else None
    if hidden is None:
        return resource.model_dump(scim_ctx=scim_ctx, response_parameters=parameters)
    dumped = resource.model_dump()
    for alias in hidden:
        dumped.pop(alias, None)
    return dumped


@cache
def _not_returned(model: type[BaseModel]) -> frozenset[str] | None:
    """The names of a model's attributes a response leaves out unless asked for ("returned"
    never or on request); None when an attribute of one of its complex attributes or
    extensions is one too."""
    hidden = set()
    for name, field in model.model_fields.items():
        if model.get_field_annotation(name, Returned) in (Returned.never, Returned.request):
            hidden.add(field.serialization_alias or name)
        if any(_not_returned(inner) != frozenset() for inner in _models_in(field.annotation)):
            return None
    return frozenset(hidden)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models a field's annotation holds (``Name | None``, ``list[Emails]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def check_filter_size(ast: FilterNode, limits: Limits) -> None:
    """Refuse (400 invalidFilter) a filter with too many comparisons or too deep."""
    terms, stack = 0, [(ast, 1)]
    while stack:  # no recursion: a filter's depth is what is being checked
        node, depth = stack.pop()
        if depth > limits.max_filter_depth:
            raise InvalidFilterException(
                detail=f"the filter nests deeper than {limits.max_filter_depth} levels")
        if isinstance(node, LogicalExpr):
            stack.extend((t, depth + 1) for t in node.terms)
        elif isinstance(node, ScimNot):
            stack.append((node.expr, depth + 1))
        elif isinstance(node, ValuePath):
            stack.append((node.val_filter, depth + 1))
        else:
            terms += 1
            if terms > limits.max_filter_terms:
                raise InvalidFilterException(
                    detail=f"the filter has more than {limits.max_filter_terms} "
                           "comparisons")


def _generic_origin(model: Any) -> Any:
    metadata = getattr(model, "__pydantic_generic_metadata__", None)
    return metadata.get("origin") if metadata else None


def _is_patch(model: Any) -> bool:
    return _generic_origin(model) is PatchOp


def _main_schema(model: Any) -> str | None:
    schema = getattr(model, "__schema__", None)
    return str(schema) if schema else None


@cache
def _references(model: type[Resource[Any]]
                ) -> list[tuple[Path[Any], str | None, str, type[Any] | None]]:
    """Where a model holds references to other resources of this server: the attribute
    holding them (``groups``, ``members``), its sub-attribute (``ref``) if any, and the
    attribute's field name and extension model (None: the resource's own), which tell
    cheaply whether the resource has any."""
    out: list[tuple[Path[Any], str | None, str, type[Any] | None]] = []
    for path in parametrize(Path, model).iter_paths(target_type=[Reference]):
        binding = path.resolve()
        assert binding is not None
        kinds = set(cast(Any, binding.target_type).__reference_types__)
        if not kinds or kinds & {"external", "uri"}:
            continue
        extension = None if issubclass(model, binding.model) else binding.model
        if binding.sub_field_name is None:
            out.append((path, None, binding.field_name, extension))
            continue
        head = f"{path.schema}:{path.parts[0]}" if path.schema else path.parts[0]
        out.append((parametrize(Path, model)(head), binding.sub_field_name,
                    binding.field_name, extension))
    return out
