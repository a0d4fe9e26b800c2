"""The registry's part of the native API, under /api/v1/ (config/urls.py includes it before
tracker's, whose router answers the API root)."""

from rest_framework.routers import SimpleRouter

from registry.api.native import ModelVersionViewSet, RegisteredModelViewSet

router = SimpleRouter()
router.register("models", RegisteredModelViewSet, basename="registered-model")
router.register("model-versions", ModelVersionViewSet, basename="model-version")

urlpatterns = router.urls
