// The dashboard type the JSON files are checked against: @grafana/schema's Dashboard, as stored
// in JSON, with the queries of our one data source typed too.
import type { AnnotationContainer, AnnotationQuery, Dashboard, DataQuery, Panel } from '@grafana/schema';

/** Grafana's string enums, as they appear in JSON: their values (`${Enum}`), not the TS enum type. */
export type AsJson<T> = T extends string
  ? `${T}`
  : T extends number | boolean | null | undefined
    ? T
    : T extends readonly (infer U)[]
      ? AsJson<U>[]
      : T extends object
        ? { [K in keyof T]: AsJson<T[K]> }
        : T;

/**
 * The PostgreSQL data source's query model (Grafana's SQLQuery; it is not part of
 * @grafana/schema, which types panel targets as free-form records). Every panel and annotation
 * query of our dashboards is raw SQL in code mode.
 */
export interface SqlQuery extends DataQuery {
  rawSql: string;
  format: 'table' | 'time_series';
  rawQuery?: boolean;
  editorMode?: 'code' | 'builder';
}

type SqlPanel = Omit<Panel, 'targets'> & { targets?: SqlQuery[] };

export type CheckedDashboard = AsJson<
  Omit<Dashboard, 'panels' | 'annotations'> & {
    panels?: SqlPanel[];
    annotations?: Omit<AnnotationContainer, 'list'> & { list?: AnnotationQuery<SqlQuery>[] };
  }
>;
