select centre, week_start, claims
from {{ source('claims_forecast', 'weekly_claims') }}
