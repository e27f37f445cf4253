-- wrk script: POST the dialout body given in $BODY with the Authorization header given in $AUTH.
wrk.method = "POST"
wrk.body = os.getenv("BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = os.getenv("AUTH")
