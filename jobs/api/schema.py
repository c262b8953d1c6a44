from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema

from jobsite.api.errors import ErrorSerializer, ValidationErrorSerializer


class AutoSchema(SpectacularAutoSchema):
    """Documents the error answers every endpoint can give, beside each one's own responses."""

    errors = {400: ValidationErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}

    def _get_response_bodies(self, direction="response"):
        # Here rather than in get_response_serializers, which @extend_schema replaces outright.
        bodies = super()._get_response_bodies(direction)
        errors = dict(self.errors)
        if self.method in ("POST", "PUT", "PATCH"):
            errors[415] = ErrorSerializer  # a body in a media type the endpoint does not parse
        for code, serializer in errors.items():
            if str(code) not in bodies:
                bodies[str(code)] = self._get_response_for_code(serializer, str(code), direction=direction)
        return bodies
