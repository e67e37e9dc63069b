"""Greengrass v2 components: recipe generation and validation, deterministic artifacts,
compatibility preflight, publish and deploy.

Layout follows the Greengrass Development Kit (`greengrass-build/recipes/<name>-<version>.json`,
`greengrass-build/artifacts/<name>/<version>/`) so `greengrass-cli deployment create` and
`gdk component publish` take the output as it is. The official recipe schema ships beside this
file (`recipe_schema.json`, Apache-2.0, see `recipe_schema.NOTICE.md`).
"""
