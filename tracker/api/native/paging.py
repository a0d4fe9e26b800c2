"""The native API's paging (its own module: DRF imports the pagination class named in settings
while its viewsets are still loading, so this may import nothing that imports them)."""

from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination

from tracker.ranges import INT64_MAX, int_from_text


class NativePagination(LimitOffsetPagination):
    """`?limit=` is capped (a page of every run of a large sweep was one response); an offset past
    64 bits is refused instead of overflowing in the database."""

    max_limit = 1000

    def get_offset(self, request):
        raw = request.query_params.get(self.offset_query_param)
        if raw is None:
            return 0
        try:
            return int_from_text(raw, low=0, high=INT64_MAX)
        except ValueError:  # OutOfRange too
            raise serializers.ValidationError({"offset": "must be an integer from 0 to 2^63-1"}) from None
