"""Triggers run by Airflow's triggerer while an OpenFlow step waits without a worker slot."""
