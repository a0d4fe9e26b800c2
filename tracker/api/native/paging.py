"""The native API's paging (its own module: DRF imports the pagination class named in settings
while its viewsets are still loading, so this may import nothing that imports them)."""

from rest_framework.pagination import LimitOffsetPagination

from tracker.api.native.parameters import integer_parameter


class NativePagination(LimitOffsetPagination):
    """`?limit=` is capped (a page of every run of a large sweep was one response); a limit or an
    offset that is no integer, below its least or past 64 bits is a 400 (DRF's own paging ignores a
    bad limit and answers a default page the client did not ask for)."""

    max_limit = 1000

    def get_limit(self, request):
        limit = integer_parameter(request.query_params, self.limit_query_param, low=1, default=self.default_limit)
        return min(limit, self.max_limit)

    def get_offset(self, request):
        return integer_parameter(request.query_params, self.offset_query_param, low=0, default=0)
