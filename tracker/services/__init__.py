"""Write services: validate, then write (one transaction each for the database)."""
