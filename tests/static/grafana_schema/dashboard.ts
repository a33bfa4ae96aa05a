/**
 * The dashboard type the provisioned dashboards are checked against, made only of types that
 * @grafana/schema publishes (Grafana's own dashboard schema, generated from its CUE kinds).
 *
 * Two adjustments to the published `Dashboard` type:
 *
 * - Panels are a union discriminated by `type`: each panel type we use gets its plugin's own
 *   published options and field-config types, where `Panel` alone types `options` and
 *   `fieldConfig.defaults.custom` as open records; stat and gauge publish no custom field config,
 *   so they may have none. A row panel is only a row, and a panel type not listed here does not
 *   type-check. Plugin options may be left out (Grafana fills in the plugin's defaults); any
 *   option given must be known and of the published type. Every panel is still a `Panel`: the
 *   generated modules assign each dashboard to the published type too.
 * - `AsJson` turns each TypeScript string enum into the union of its values: a JSON file holds
 *   "absolute", never `ThresholdsMode.Absolute`, and the CUE schema the enums come from is a
 *   disjunction of those strings. Values outside the enum still fail.
 *
 * What the published schema leaves open stays open here: query targets
 * (`Record<string, unknown>` plus the common DataQuery fields; @grafana/schema 12.0.0 publishes
 * no Prometheus query type, so PromQL is checked by promtool instead) and override values.
 */
import type {
  Dashboard,
  DataQuery,
  FieldConfig,
  FieldConfigSource,
  Panel,
  RowPanel,
} from "@grafana/schema";
import type * as gauge from "@grafana/schema/dist/esm/raw/composable/gauge/panelcfg/x/GaugePanelCfg_types.gen.js";
import type * as stat from "@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen.js";
import type * as timeseries from "@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen.js";

type IsAny<T> = 0 extends 1 & T ? true : false;

/** The JSON form of a schema type: string enums become their string values, recursively. */
export type AsJson<T> =
  IsAny<T> extends true
    ? T
    : T extends string
      ? `${T}`
      : T extends number | boolean | null | undefined
        ? T
        : T extends ReadonlyArray<infer Item>
          ? Array<AsJson<Item>>
          : T extends object
            ? { [K in keyof T]: AsJson<T[K]> }
            : T;

/** A query target: the common DataQuery fields typed, the datasource-specific ones open. */
type Target = AsJson<DataQuery> & Record<string, unknown>;

/** A panel of one plugin type, with that plugin's published options and field config. */
type PluginPanel<Type extends string, Options, Custom> = Omit<
  Panel,
  "type" | "options" | "fieldConfig" | "targets"
> & {
  type: Type;
  options: Options;
  fieldConfig: Omit<FieldConfigSource, "defaults"> & {
    defaults: Omit<FieldConfig, "custom"> & { custom?: Custom };
  };
  targets: Array<Target>;
};

/**
 * Plugin options with a default in the plugin's schema may be left out of the JSON (Grafana fills
 * them in); what is given must have the published type, and nothing unknown may be given.
 */
type TimeSeriesPanel = PluginPanel<
  "timeseries",
  Partial<timeseries.Options>,
  timeseries.FieldConfig
>;
type StatPanel = PluginPanel<"stat", Partial<stat.Options>, Record<string, never>>;
type GaugePanel = PluginPanel<"gauge", Partial<gauge.Options>, Record<string, never>>;

export type CheckedPanel = AsJson<TimeSeriesPanel> | AsJson<StatPanel> | AsJson<GaugePanel>;

export type CheckedRow = AsJson<Omit<RowPanel, "panels">> & { panels: Array<CheckedPanel> };

export type CheckedDashboard = AsJson<Omit<Dashboard, "panels">> & {
  panels: Array<CheckedPanel | CheckedRow>;
};

/** The published Dashboard type itself, read as JSON: every checked dashboard must also be one. */
export type PublishedDashboard = AsJson<Dashboard>;
