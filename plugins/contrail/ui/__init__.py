"""What a person sees of the lake inside the Airflow UI: the Lake view, the Data Docs behind the
login, and the tasks' extra links. ``plugin.py`` registers it with Airflow (the plugins folder
loads that file); ``app.py`` holds the routes, ``lakeview.py`` the data, ``pages.py`` the HTML."""
