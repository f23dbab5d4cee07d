#!/usr/bin/env python3
"""Embeds docs/openapi.yaml into Sources/CofferServer/System/OpenAPIDocument.swift (served at GET /openapi.yaml)."""
import pathlib, sys
root = pathlib.Path(__file__).resolve().parent.parent
yaml = (root / "docs/openapi.yaml").read_text()
if '"""#' in yaml:
    sys.exit("docs/openapi.yaml must not contain the sequence \"\"\"#")
swift = (
    "/// The OpenAPI description served at `GET /openapi.yaml` (generated from docs/openapi.yaml\n"
    "/// by scripts/embed-openapi.py; edit the YAML, then run the script).\n"
    "enum OpenAPIDocument {\n"
    "    static let yaml = #\"\"\"\n" + yaml + "\n\"\"\"#\n}\n"
)
(root / "Sources/CofferServer/System/OpenAPIDocument.swift").write_text(swift)
