"""The endpoint's `/swagger.json`: OpenAPI 3 of the scoring request and response, from `score.py`'s samples."""

from __future__ import annotations

from types import ModuleType
from typing import Any

_DEFAULT_INPUT = [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]]
_DEFAULT_OUTPUT = [0.0]


def openapi_document(endpoint: str, module: ModuleType | None) -> dict[str, Any]:
    """The document for an endpoint whose serving deployment runs `module` (None: no deployment yet).

    Long because: the document is a literal (paths, schemas, security), clearer whole than assembled from parts."""
    width = getattr(module, "N_FEATURES", len(_DEFAULT_INPUT[0]))
    example_in = getattr(module, "INPUT_SAMPLE", _DEFAULT_INPUT)
    example_out = getattr(module, "OUTPUT_SAMPLE", _DEFAULT_OUTPUT)
    error = {
        "description": "The request was refused; `error` says why.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": f"{endpoint} scoring endpoint", "version": "1.0"},
        "servers": [{"url": "/"}],
        "paths": {
            "/score": {
                "post": {
                    "summary": "Score rows of features",
                    "operationId": "score",
                    "security": [{"bearer": []}],
                    "parameters": [
                        {
                            "name": "azureml-model-deployment",
                            "in": "header",
                            "required": False,
                            "description": "Send the request to this deployment instead of following the traffic split.",
                            "schema": {"type": "string"},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ScoreRequest"}}},
                    },
                    "responses": {
                        "200": {
                            "description": "One prediction per row.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ScoreResponse"}}},
                        },
                        "400": error,
                        "401": error,
                        "404": error,
                        "413": error,
                        "503": error,
                    },
                }
            },
            "/": {"get": {"summary": "Liveness", "responses": {"200": {"description": "Healthy"}}}},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "ScoreRequest": {
                    "type": "object",
                    "required": ["data"],
                    "properties": {
                        "data": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "array",
                                "minItems": width,
                                "maxItems": width,
                                "items": {"type": "number"},
                            },
                        }
                    },
                    "example": {"data": example_in},
                },
                "ScoreResponse": {
                    "type": "object",
                    "required": ["result"],
                    "properties": {"result": {"type": "array", "items": {"type": "number"}}},
                    "example": {"result": example_out},
                },
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
            },
        },
    }
