#!/bin/sh
# First start of the PostgreSQL container: one database for Crop AI, one for Prefect.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
CREATE DATABASE cropai;
CREATE DATABASE prefect;
SQL
