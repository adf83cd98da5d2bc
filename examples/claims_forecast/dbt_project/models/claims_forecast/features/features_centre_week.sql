-- One row per centre and week: the week's claims (the target) and what was known before the week started.
select
    centre,
    week_start,
    cast(claims as double) as claims,
    {{ lag_feature('claims', 'centre', 'week_start', 1) }} as claims_lag_1,
    {{ lag_feature('claims', 'centre', 'week_start', 2) }} as claims_lag_2,
    {{ lag_feature('claims', 'centre', 'week_start', 52) }} as claims_lag_52,
    {{ rolling_feature('avg', 'claims', 'centre', 'week_start', 4) }} as claims_avg_4,
    {{ rolling_feature('avg', 'claims', 'centre', 'week_start', 13) }} as claims_avg_13,
    cast(extract(week from week_start) as double) as week_of_year,
    {{ lag_feature('claims', 'centre', 'week_start', 52) }} is not null as history_complete
from {{ ref('stg_weekly_claims') }}
