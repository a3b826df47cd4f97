"""What several nodes share through the database: secrets, bans and the scheduler lease."""
