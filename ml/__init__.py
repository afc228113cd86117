"""Optional ML stack (the `.[ml]` extra). Nothing in app/ or workers/ may import it."""
