from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema

from .errors import ErrorSerializer, ValidationErrorSerializer


class AutoSchema(SpectacularAutoSchema):
    """Documents the error answers every endpoint can give, beside each one's own responses."""

    errors = {400: ValidationErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}

    def get_response_serializers(self):
        responses = super().get_response_serializers()
        if not isinstance(responses, dict):
            if self.method == "DELETE":
                responses = {204: None}
            else:
                responses = {201 if self._is_create_operation() else 200: responses}
        return {**self.errors, **responses}
