with trucks as (
    select * from {{ ref('stg_trucks') }}
),

seen as (
    select truck_id, min(reading_at) as first_reading_at, max(reading_at) as last_reading_at
    from {{ ref('stg_engine_telemetry') }}
    group by truck_id
)

select
    trucks.truck_id,
    trucks.truck_type,
    trucks.segment,
    trucks.model_year,
    trucks.depot_id,
    seen.first_reading_at,
    seen.last_reading_at
from trucks
left join seen using (truck_id)
