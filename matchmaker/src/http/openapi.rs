//! `GET /openapi.json`: the API description. Paths are written here; body schemas are
//! generated from the Rust types (schemars), so they cannot drift from what the handlers parse.

use schemars::generate::SchemaSettings;
use serde_json::{Value, json};
use stadion_crds::allocation::{GameServerAllocation, GameServerAllocationStatus};

use crate::ticket::{Ticket, TicketRequest};

/// Every route as (method, path); a test checks the document and the router agree.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/tickets"),
    ("get", "/v1/tickets/{id}"),
    ("delete", "/v1/tickets/{id}"),
    ("get", "/v1/tickets/{id}/events"),
    ("post", "/v1/allocations"),
    ("post", "/gameserverallocation"),
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
];

fn error(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn agones_error(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AgonesError"}}}})
}

fn json_body(schema: &str) -> Value {
    json!({"content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn ok(description: &str, schema: &str) -> Value {
    let mut v = json_body(schema);
    v["description"] = json!(description);
    v
}

fn id_param() -> Value {
    json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}}])
}

/// The OpenAPI 3.0 document.
pub fn openapi() -> Value {
    let mut generator = SchemaSettings::openapi3().into_generator();
    for schema in [
        generator.subschema_for::<TicketRequest>(),
        generator.subschema_for::<Ticket>(),
        generator.subschema_for::<GameServerAllocation>(),
        generator.subschema_for::<GameServerAllocationStatus>(),
    ] {
        // Each top-level type is registered as a component; the returned `$ref` is not needed.
        drop(schema);
    }
    let mut schemas = generator.take_definitions(true);
    for (name, schema) in crate::agones_allocation::schema::components() {
        schemas.insert(name.to_owned(), schema);
    }
    schemas.insert(
        "Error".to_owned(),
        json!({
            "type": "object",
            "required": ["error"],
            "properties": {"error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "description": "Stable error kind, e.g. invalid, not_found, conflict"},
                    "message": {"type": "string"},
                    "field": {"type": "string", "nullable": true, "description": "Request field at fault"},
                    "details": {"type": "array", "items": {"type": "object", "properties": {
                        "field": {"type": "string"}, "message": {"type": "string"}}}}
                }
            }}
        }),
    );
    let unauthorized = error("Missing or invalid bearer token (when auth is configured)");
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Stadion matchmaker",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Player tickets in, an allocated game server's address and port out. The same listener also answers Agones' allocation service over gRPC (HTTP/2 without TLS): `allocation.AllocationService/Allocate`, with the request and response documented here for `POST /gameserverallocation`."
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}
        },
        "paths": {
            "/v1/tickets": {"post": {
                "summary": "Create a ticket (or return the one with the same idempotency key)",
                "security": [{"bearer": []}],
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": false, "schema": {"type": "string"}}],
                "requestBody": json_body("TicketRequest"),
                "responses": {
                    "201": ok("Created", "Ticket"),
                    "200": ok("The existing ticket for this idempotency key", "Ticket"),
                    "400": error("Malformed JSON"),
                    "401": unauthorized,
                    "409": error("Idempotency key reused with a different body, or a player already has a live ticket"),
                    "413": error("Body too large"),
                    "422": error("Invalid ticket (unknown queue, missing skill or latencies, party too large)")
                }
            }},
            "/v1/tickets/{id}": {
                "get": {
                    "summary": "Get a ticket",
                    "security": [{"bearer": []}],
                    "parameters": id_param(),
                    "responses": {"200": ok("The ticket", "Ticket"), "401": unauthorized, "404": error("Unknown or forgotten ticket")}
                },
                "delete": {
                    "summary": "Cancel a ticket that is not assigned",
                    "security": [{"bearer": []}],
                    "parameters": id_param(),
                    "responses": {
                        "200": ok("The cancelled ticket", "Ticket"),
                        "401": unauthorized,
                        "404": error("Unknown or forgotten ticket"),
                        "409": error("Already assigned, timed out or failed")
                    }
                }
            },
            "/v1/tickets/{id}/events": {"get": {
                "summary": "Server-Sent Events (`event: ticket`, data: Ticket JSON): the current state, then each change, ending after a final state",
                "security": [{"bearer": []}],
                "parameters": id_param(),
                "responses": {
                    "200": {"description": "Event stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                    "401": unauthorized,
                    "404": error("Unknown or forgotten ticket")
                }
            }},
            "/v1/allocations": {"post": {
                "summary": "Allocate a Ready game server directly (GameServerAllocation body)",
                "security": [{"bearer": []}],
                "requestBody": json_body("GameServerAllocation"),
                "responses": {
                    "200": ok("The allocated server", "GameServerAllocationStatus"),
                    "400": error("Malformed JSON"),
                    "401": unauthorized,
                    "413": error("Body too large"),
                    "422": error("Invalid allocation request"),
                    "429": error("No game server is available"),
                    "503": error("Allocation backend failed")
                }
            }},
            "/gameserverallocation": {"post": {
                "summary": "Agones' allocation API (REST form of allocation.AllocationService/Allocate): allocate a Ready server for a backend written against Agones",
                "security": [{"bearer": []}],
                "requestBody": json_body("AgonesAllocationRequest"),
                "responses": {
                    "200": ok("The allocated server", "AgonesAllocationResponse"),
                    "400": agones_error("Malformed JSON or an invalid request (unknown enum, invalid selector or metadata, multiClusterSetting.enabled); error.field names the request field"),
                    "401": agones_error("Missing or invalid bearer token (when auth is configured)"),
                    "409": agones_error("Every matching server was taken by other requests first"),
                    "413": agones_error("Body too large"),
                    "429": agones_error("No game server is available"),
                    "503": agones_error("Allocation backend failed")
                }
            }},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics (OpenMetrics text)", "responses": {"200": {"description": "Metrics", "content": {"application/openmetrics-text": {"schema": {"type": "string"}}}}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.0", "content": {"application/json": {"schema": {"type": "object"}}}}}}}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_every_route_and_resolves_every_schema_ref() {
        let doc = openapi();
        for (method, path) in ROUTES {
            assert!(doc["paths"][path][method].is_object(), "{method} {path} missing");
        }
        let documented: usize =
            doc["paths"].as_object().map_or(0, |p| p.values().map(|m| m.as_object().map_or(0, |m| m.len())).sum());
        assert_eq!(documented, ROUTES.len(), "undocumented extra operations");
        let text = doc.to_string();
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &piece[..piece.find('"').unwrap_or(0)];
            assert!(doc["components"]["schemas"][name].is_object(), "dangling $ref {name}");
        }
        for name in [
            "Ticket",
            "TicketRequest",
            "GameServerAllocation",
            "GameServerAllocationStatus",
            "Error",
            "AgonesAllocationRequest",
            "AgonesAllocationResponse",
            "AgonesError",
        ] {
            assert!(doc["components"]["schemas"][name].is_object(), "schema {name} missing");
        }
    }
}
