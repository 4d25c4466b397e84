"""Example potential variants: one small file each, found by the registry's package walk."""
