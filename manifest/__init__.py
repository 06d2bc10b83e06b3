"""The Teams app package: the manifest template, the icons and the build that fills the command
menu from the bot's command registry. `python -m manifest.build` writes the reference manifest
(manifest/manifest.json, committed) and build/appPackage.zip (from the environment)."""
