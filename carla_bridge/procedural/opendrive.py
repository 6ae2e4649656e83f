"""Write a Town as an OpenDRIVE 1.4 map (what the CARLA stand-in serves from ``get_map_data``).

OpenDRIVE is right-handed (x east, y north, headings counter-clockwise); CARLA reads a map by
flipping y (carla y = -odr y), so here y, heading and curvature change sign. Roads carry one
driving lane per direction (right-hand traffic: lane -1 drives along s, lane 1 against it) and a
sidewalk lane on each side; every junction lists its connecting roads with lane links, so the
network is closed: no lane ends without a successor (CARLA's Traffic Manager drops vehicles at dead
ends in osm_mode).
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from carla_bridge.procedural.town import LANE_WIDTH, SIDEWALK, Road, Segment, Town

# CARLA's parser resolves junction and road ids in one namespace, so junction ids start here.
JUNCTION_ID0 = 1000

_HEADER = (
    '<?xml version="1.0" standalone="yes"?>\n<OpenDRIVE>\n'
    '  <header revMajor="1" revMinor="4" name="{name}" version="1" date="2026-01-01" '
    'north="{north:.3f}" south="{south:.3f}" east="{east:.3f}" west="{west:.3f}" vendor="neural-drive">\n'
    "    <geoReference><![CDATA[+proj=tmerc +lat_0=0 +lon_0=0 +k=1 +x_0=0 +y_0=0 +datum=WGS84 "
    "+units=m +geoidgrids=egm96_15.gtx +vunits=m +no_defs ]]></geoReference>\n  </header>\n"
)


def _geometry(seg: Segment, s: float) -> str:
    shape = "<line/>" if abs(seg.curvature) < 1e-12 else f'<arc curvature="{-seg.curvature:.9f}"/>'
    return (f'      <geometry s="{s:.6f}" x="{seg.x:.6f}" y="{-seg.y:.6f}" hdg="{-seg.hdg:.9f}" '
            f'length="{seg.length:.6f}">{shape}</geometry>\n')


def _lane(lane_id: int, kind: str, width: float, mark: str, link: str = "") -> str:
    return (f'          <lane id="{lane_id}" type="{kind}" level="false"><link>{link}</link>'
            f'<width sOffset="0" a="{width}" b="0" c="0" d="0"/>'
            f'<roadMark sOffset="0" type="{mark}" weight="standard" color="standard" width="0.15"/>'
            "</lane>\n")


def _road(road: Road) -> str:
    out = [f'  <road name="Road {road.id}" length="{road.length:.6f}" id="{road.id}" '
           f'junction="{road.junction + JUNCTION_ID0 if road.junction >= 0 else -1}">\n    <link>']
    if road.junction < 0:
        out.append(f'<predecessor elementType="junction" elementId="{JUNCTION_ID0 + road.start_junction}"/>'
                   f'<successor elementType="junction" elementId="{JUNCTION_ID0 + road.end_junction}"/>')
    else:
        (pid, pend), (sid, send) = road.predecessor, road.successor
        out.append(f'<predecessor elementType="road" elementId="{pid}" contactPoint="{pend}"/>'
                   f'<successor elementType="road" elementId="{sid}" contactPoint="{send}"/>')
    out.append('</link>\n    <type s="0" type="town"><speed max="40" unit="km/h"/></type>\n'
               "    <planView>\n")
    s = 0.0
    for seg in road.segments:
        out.append(_geometry(seg, s))
        s += seg.length
    out.append('    </planView>\n    <elevationProfile><elevation s="0" a="0" b="0" c="0" d="0"/>'
               '</elevationProfile>\n    <lateralProfile/>\n    <lanes>\n'
               '      <laneOffset s="0" a="0" b="0" c="0" d="0"/>\n      <laneSection s="0">\n')
    center = ('        <center><lane id="0" type="none" level="false"><link/>'
              '<roadMark sOffset="0" type="{}" weight="standard" color="standard" width="0.15"/>'
              "</lane></center>\n")
    if road.junction < 0:
        out.append("        <left>\n" + _lane(2, "sidewalk", SIDEWALK, "none")
                   + _lane(1, "driving", LANE_WIDTH, "solid") + "        </left>\n")
        out.append(center.format("broken"))
        out.append("        <right>\n" + _lane(-1, "driving", LANE_WIDTH, "solid")
                   + _lane(-2, "sidewalk", SIDEWALK, "none") + "        </right>\n")
    else:
        (_, pend), (_, send) = road.predecessor, road.successor
        link = (f'<predecessor id="{-1 if pend == "end" else 1}"/>'
                f'<successor id="{-1 if send == "start" else 1}"/>')
        out.append(center.format("none"))
        out.append("        <right>\n" + _lane(-1, "driving", LANE_WIDTH, "none", link) + "        </right>\n")
    out.append("      </laneSection>\n    </lanes>\n    <objects/>\n    <signals/>\n  </road>\n")
    return "".join(out)


def town_to_opendrive(town: Town, name: str = "ProceduralTown") -> str:
    """The town as OpenDRIVE 1.4 XML text."""
    xmin, ymin, xmax, ymax = town.bounds
    parts = [_HEADER.format(name=escape(name), north=-ymin + 20, south=-ymax - 20, east=xmax + 20,
                            west=xmin - 20)]
    parts += [_road(road) for road in town.roads]
    for junction in town.junctions:
        parts.append(f'  <junction id="{JUNCTION_ID0 + junction.id}" name="Junction {junction.id}">\n')
        for k, rid in enumerate(junction.connectors):
            road = town.roads[rid]
            pid, pend = road.predecessor
            parts.append(f'    <connection id="{k}" incomingRoad="{pid}" connectingRoad="{rid}" '
                         f'contactPoint="start"><laneLink from="{-1 if pend == "end" else 1}" to="-1"/>'
                         "</connection>\n")
        parts.append("  </junction>\n")
    parts.append("</OpenDRIVE>\n")
    return "".join(parts)
