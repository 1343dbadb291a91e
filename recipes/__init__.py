"""Zoo entry and recipe files (YAML), shipped with mrizoo as package data (``mrizoo.recipes``)."""
