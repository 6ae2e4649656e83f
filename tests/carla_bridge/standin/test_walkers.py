"""PythonAPI/examples/generate_traffic.py's walker calls through the real ``carla`` client: pedestrian
blueprints of generation 2 with their speeds, walkers and their AI controllers spawned by batch,
the controller's start, go_to_location, set_max_speed and stop, and the batch destroy."""

from __future__ import annotations

import pytest

from support.carla import client, require_carla, standin  # noqa: F401

pytestmark = pytest.mark.carla


def test_generate_traffic_walker_calls_spawn_standing_walkers_with_controllers(client):
    carla = require_carla()
    world = client.get_world()
    library = world.get_blueprint_library()
    walkers_bp = [b for b in library.filter("walker.pedestrian.*") if int(b.get_attribute("generation")) == 2]
    assert walkers_bp, "generate_traffic.py: Couldn't find any walkers with the specified filters"
    speeds = [float(b.get_attribute("speed").recommended_values[1]) for b in walkers_bp]
    assert all(1.0 <= s <= 2.0 for s in speeds)
    # The procedural town serves no navigation mesh, so libcarla finds no location (as on CARLA's
    # tiled maps); walkers are spawned on the sidewalk of a spawn point instead.
    assert world.get_random_location_from_navigation() is None
    road = world.get_map().get_spawn_points()[5].location
    spots = [carla.Transform(carla.Location(road.x + 3.0 * k, road.y + 5.0, 0.93)) for k in range(3)]
    SpawnActor = carla.command.SpawnActor
    for blueprint in walkers_bp[:1]:
        blueprint.set_attribute("is_invincible", "false")
    results = client.apply_batch_sync([SpawnActor(walkers_bp[0], t) for t in spots], True)
    assert [r.error for r in results] == ["", "", ""]
    walker_ids = [r.actor_id for r in results]
    controller_bp = library.find("controller.ai.walker")
    results = client.apply_batch_sync([SpawnActor(controller_bp, carla.Transform(), w) for w in walker_ids], True)
    controller_ids = [r.actor_id for r in results]
    assert [r.error for r in results] == ["", "", ""]
    actors = world.get_actors(controller_ids + walker_ids)
    world.wait_for_tick(5.0)
    controllers = [a for a in actors if a.type_id == "controller.ai.walker"]
    walkers = [a for a in actors if a.type_id.startswith("walker.")]
    assert len(controllers) == len(walkers) == 3 and {c.parent.id for c in controllers} == set(walker_ids)
    for controller in controllers:
        controller.start()
        controller.go_to_location(spots[0].location)
        controller.set_max_speed(speeds[0])
    world.wait_for_tick(5.0)
    for walker, spot in zip(sorted(walkers, key=lambda a: a.id), spots):
        assert walker.get_transform().location.distance(spot.location) < 0.01  # standing where it was put
        assert walker.bounding_box.extent.z > 0.5
    for controller in controllers:
        controller.stop()
    responses = client.apply_batch_sync([carla.command.DestroyActor(i) for i in controller_ids + walker_ids])
    assert [r.error for r in responses] == [""] * 6
