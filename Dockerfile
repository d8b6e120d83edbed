# The image `astro dev start` and `astro deploy` build (docs/deployment.md#astro-cli).
#
# Astro Runtime 3.3-8 ships Airflow 3.3.2, requirements.txt's apache-airflow pin; Runtime 3.3 comes with
# Python 3.12, 3.13 or 3.14 (3.14 unless the tag names one), and 3.12 is the nearest to the 3.11 the suite runs.
# tests/system/test_astro_project.py holds the tag and the pin together: bump both, and its table, at once.
#
# The -base flavour carries none of the default image's ONBUILD steps, so they are written out below, in the same
# order, with one change: the default image's install step refuses a requirements.txt that pins apache-airflow
# (the image's Airflow is Astronomer's build, 3.3.2+astro.N, and must not be replaced from PyPI), and ours pins it
# for every install that is not this image. The copy installed here leaves that one line out.
FROM astrocrpublic.azurecr.io/runtime:3.3-8-python-3.12-base

USER root
# OS packages, one a line; packages.txt is empty: psycopg[binary] brings its own libpq.
COPY packages.txt .
RUN /usr/local/bin/install-system-packages
COPY requirements.txt .
RUN sed -i -E '/^apache-airflow[[:space:]]*[=~<>!]/d' requirements.txt \
    && /usr/local/bin/install-python-dependencies
USER astro
# The project into AIRFLOW_HOME (/usr/local/airflow), less .dockerignore: the package finds include/ beside plugins/.
COPY --chown=astro:0 . .
