"""arq worker pools. The fetch pool arrives with the workers issue; nothing here yet."""
